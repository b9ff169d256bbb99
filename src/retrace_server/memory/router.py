from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from retrace_server.auth.dependencies import UserDep
from retrace_server.body import body_schema, parse_body
from retrace_server.deps import DbDep
from retrace_server.embeddings.dependencies import EmbeddingsDep
from retrace_server.jsonutil import JsonResponse, list_envelope
from retrace_server.memory import service
from retrace_server.memory.schemas import (
    MemoryCreate,
    MemoryEntry,
    MemoryFilters,
    MemorySearch,
    MemorySearchResults,
)
from retrace_server.openapi import error_responses
from retrace_server.pagination import PageDep
from retrace_server.schemas import ListPage

router = APIRouter(prefix="/api/v1/memory", tags=["memory"])

BODY_ERRORS = error_responses(400, 413, 415)
NOT_FOUND = error_responses(404, e404="No such memory for this user")


@router.post(
    "",
    status_code=201,
    summary="Store a memory entry",
    description=(
        "201 with the new entry. The same content in the same scope is stored once: the existing entry "
        "answers 200. A `key` already used in the scope updates that entry (200). The entry is embedded "
        "before the answer, so a search right after finds it."
    ),
    response_model=MemoryEntry,
    responses={
        200: {
            "model": MemoryEntry,
            "description": "Existing entry (same content) or updated entry (same key)",
        },
        **BODY_ERRORS,
        **error_responses(409, e409="The key's new content is already another entry of the scope"),
    },
    openapi_extra=body_schema(MemoryCreate),
)
async def create_memory(
    request: Request, user: UserDep, db: DbDep, embeddings: EmbeddingsDep
) -> JsonResponse:
    payload = await parse_body(request, MemoryCreate)
    memory, created = await service.create(db, embeddings, user_id=user.id, payload=payload)
    return JsonResponse(memory, status_code=201 if created else 200)


@router.post(
    "/search",
    summary="Search memories by meaning",
    description="Results carry `score` in 0..1 (cosine similarity), best first.",
    response_model=MemorySearchResults,
    responses=BODY_ERRORS,
    openapi_extra=body_schema(MemorySearch),
)
async def search_memory(
    request: Request, user: UserDep, db: DbDep, embeddings: EmbeddingsDep
) -> JsonResponse:
    payload = await parse_body(request, MemorySearch)
    return JsonResponse(await service.search(db, embeddings, user_id=user.id, request=payload))


@router.get(
    "",
    summary="List memories, newest first",
    response_model=ListPage[MemoryEntry],
    responses=error_responses(400),
)
async def list_memories(
    user: UserDep,
    db: DbDep,
    page: PageDep,
    scope: Annotated[str | None, Query(max_length=256)] = None,
    category: Annotated[str | None, Query(max_length=64)] = None,
    key: Annotated[str | None, Query(max_length=256)] = None,
) -> JsonResponse:
    filters = MemoryFilters(scope=scope, category=category, key=key)
    data, total = await service.list_memories(db, user_id=user.id, filters=filters, page=page)
    return JsonResponse(list_envelope(data, total=total, limit=page.limit, offset=page.offset))


@router.get("/{memory_id}", summary="Get a memory entry", response_model=MemoryEntry, responses=NOT_FOUND)
async def get_memory(memory_id: str, user: UserDep, db: DbDep) -> JsonResponse:
    return JsonResponse(await service.get(db, user_id=user.id, memory_id=memory_id))


@router.delete("/{memory_id}", status_code=204, summary="Delete a memory entry", responses=NOT_FOUND)
async def delete_memory(memory_id: str, user: UserDep, db: DbDep) -> Response:
    await service.delete_memory(db, user_id=user.id, memory_id=memory_id)
    return Response(status_code=204)
