from __future__ import annotations

from fastapi import APIRouter, Request

from retrace_server.auth.dependencies import UserDep
from retrace_server.body import body_schema, parse_body
from retrace_server.deps import DbDep
from retrace_server.embeddings.dependencies import EmbeddingsDep
from retrace_server.jsonutil import JsonResponse
from retrace_server.openapi import error_responses
from retrace_server.search import service
from retrace_server.search.schemas import SearchRequest, SearchResults

router = APIRouter(prefix="/api/v1/search", tags=["search"])


@router.post(
    "",
    summary="Search your spans by meaning and by words",
    description=(
        "Hybrid ranking: full-text and vector results fused by reciprocal rank. `mode` says which "
        "rankings answered (`lexical` when the server has no embedder). Spans are found by words as "
        "soon as they are stored and by meaning once the indexer has embedded them."
    ),
    response_model=SearchResults,
    responses=error_responses(
        400,
        413,
        415,
        e400="Invalid body (empty or too long query, bad limit or filters), "
        "or mode=semantic on a server without an embedder",
    ),
    openapi_extra=body_schema(SearchRequest),
)
async def search_spans(request: Request, user: UserDep, db: DbDep, embeddings: EmbeddingsDep) -> JsonResponse:
    payload = await parse_body(request, SearchRequest)
    return JsonResponse(await service.search(db, embeddings, user_id=user.id, request=payload))
