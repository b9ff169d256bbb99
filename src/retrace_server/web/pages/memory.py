"""Memory: list and filter entries, search them by meaning, read one, delete one."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from pydantic import ValidationError
from starlette.responses import RedirectResponse, Response

from retrace_server.embeddings.dependencies import EmbeddingsDep
from retrace_server.errors import ApiError, describe_validation_errors
from retrace_server.memory import service as memory
from retrace_server.memory.schemas import KNOWN_CATEGORIES, MemoryFilters, MemorySearch
from retrace_server.pagination import Page
from retrace_server.web.auth import SessionDep, checked_form
from retrace_server.web.templating import render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50


@router.get("/memory")
async def memory_page(
    request: Request,
    signed_in: SessionDep,
    embeddings: EmbeddingsDep,
    q: Annotated[str, Query(max_length=2000)] = "",
    scope: Annotated[str, Query(max_length=256)] = "",
    category: Annotated[str, Query(max_length=64)] = "",
    key: Annotated[str, Query(max_length=256)] = "",
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    db = request.app.state.db
    user_id = signed_in.user.id
    entries: list[dict[str, Any]]
    mode = None
    if q.strip():
        try:
            search = MemorySearch(query=q, limit=50, scope=scope or None, category=category or None)
        except ValidationError as exc:
            raise ApiError(400, describe_validation_errors(exc.errors())) from None
        found = await memory.search(db, embeddings, user_id=user_id, request=search)
        entries, total, mode = found["data"], len(found["data"]), found["mode"]
    else:
        filters = MemoryFilters(scope=scope or None, category=category or None, key=key or None)
        entries, total = await memory.list_memories(
            db, user_id=user_id, filters=filters, page=Page(PAGE_SIZE, offset)
        )
    params = {k: v for k, v in {"q": q, "scope": scope, "category": category, "key": key}.items() if v}
    return render(
        request,
        "memory.html",
        entries=entries,
        total=total,
        q=q,
        scope=scope,
        category=category,
        key=key,
        mode=mode,
        offset=offset,
        limit=PAGE_SIZE,
        base_query=urlencode(params),
        categories=KNOWN_CATEGORIES,
        deleted=request.query_params.get("deleted") == "1",
    )


@router.get("/memory/{memory_id}")
async def memory_entry(memory_id: str, request: Request, signed_in: SessionDep) -> Response:
    entry = await memory.get(request.app.state.db, user_id=signed_in.user.id, memory_id=memory_id)
    return render(request, "memory_entry.html", entry=entry)


@router.post("/memory/{memory_id}/delete")
async def delete_entry(memory_id: str, request: Request, signed_in: SessionDep) -> Response:
    await checked_form(request, signed_in)
    await memory.delete_memory(request.app.state.db, user_id=signed_in.user.id, memory_id=memory_id)
    return RedirectResponse("/memory?deleted=1", status_code=303)
