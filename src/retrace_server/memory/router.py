from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from retrace_server.auth.dependencies import UserDep
from retrace_server.body import body_schema, parse_body
from retrace_server.deps import DbDep
from retrace_server.embeddings.dependencies import EmbeddingsDep
from retrace_server.jsonutil import JsonResponse, list_envelope
from retrace_server.memory import service
from retrace_server.memory.schemas import MemoryCreate, MemoryFilters, MemorySearch
from retrace_server.pagination import PageDep

router = APIRouter(prefix="/api/v1/memory", tags=["memory"])

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid body or parameters"},
    401: {"description": "Missing or invalid credentials"},
}
BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"description": "Body too large"},
    415: {"description": "Body is not JSON"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such memory for this user"}}


@router.post(
    "",
    status_code=201,
    summary="Store a memory entry",
    description=(
        "201 with the new entry. The same content in the same scope is stored once: the existing entry "
        "answers 200. A `key` already used in the scope updates that entry (200). The entry is embedded "
        "before the answer, so a search right after finds it."
    ),
    responses={
        200: {"description": "Existing entry (same content) or updated entry (same key)"},
        **ERRORS,
        409: {"description": "The key's new content is already another entry of the scope"},
        **BODY_ERRORS,
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
    responses={**ERRORS, **BODY_ERRORS},
    openapi_extra=body_schema(MemorySearch),
)
async def search_memory(
    request: Request, user: UserDep, db: DbDep, embeddings: EmbeddingsDep
) -> JsonResponse:
    payload = await parse_body(request, MemorySearch)
    return JsonResponse(await service.search(db, embeddings, user_id=user.id, request=payload))


@router.get("", summary="List memories, newest first", responses=ERRORS)
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


@router.get("/{memory_id}", summary="Get a memory entry", responses={**ERRORS, **NOT_FOUND})
async def get_memory(memory_id: str, user: UserDep, db: DbDep) -> JsonResponse:
    return JsonResponse(await service.get(db, user_id=user.id, memory_id=memory_id))


@router.delete(
    "/{memory_id}", status_code=204, summary="Delete a memory entry", responses={**ERRORS, **NOT_FOUND}
)
async def delete_memory(memory_id: str, user: UserDep, db: DbDep) -> Response:
    await service.delete_memory(db, user_id=user.id, memory_id=memory_id)
    return Response(status_code=204)
