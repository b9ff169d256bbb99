from __future__ import annotations

from fastapi import APIRouter, Request

from retrace_server.auth.dependencies import UserDep
from retrace_server.body import body_schema, parse_body
from retrace_server.deps import DbDep
from retrace_server.embeddings.dependencies import EmbeddingsDep
from retrace_server.jsonutil import JsonResponse
from retrace_server.search import service
from retrace_server.search.schemas import SearchRequest

router = APIRouter(prefix="/api/v1/search", tags=["search"])


@router.post(
    "",
    summary="Search your spans by meaning and by words",
    description=(
        "Hybrid ranking: full-text and vector results fused by reciprocal rank. `mode` says which "
        "rankings answered (`lexical` when the server has no embedder). Spans are found by words as "
        "soon as they are stored and by meaning once the indexer has embedded them."
    ),
    responses={
        400: {"description": "Invalid body (empty or too long query, bad limit or filters)"},
        401: {"description": "Missing or invalid credentials"},
        413: {"description": "Body too large"},
        415: {"description": "Body is not JSON"},
    },
    openapi_extra=body_schema(SearchRequest),
)
async def search_spans(request: Request, user: UserDep, db: DbDep, embeddings: EmbeddingsDep) -> JsonResponse:
    payload = await parse_body(request, SearchRequest)
    return JsonResponse(await service.search(db, embeddings, user_id=user.id, request=payload))
