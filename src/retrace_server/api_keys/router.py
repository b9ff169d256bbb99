from __future__ import annotations

from fastapi import APIRouter, Response

from retrace_server.api_keys import service
from retrace_server.api_keys.schemas import ApiKeyCreated, ApiKeyStatus
from retrace_server.auth.dependencies import UserDep
from retrace_server.deps import DbDep
from retrace_server.jsonutil import JsonResponse
from retrace_server.openapi import error_responses

router = APIRouter(prefix="/api/v1/api-keys", tags=["api-keys"])


@router.post(
    "",
    status_code=201,
    summary="Generate a new API key (replaces the current one)",
    response_model=ApiKeyCreated,
)
async def create_api_key(user: UserDep, db: DbDep) -> JsonResponse:
    created = await service.create(db, user_id=user.id)
    return JsonResponse(created.model_dump(), status_code=201)


@router.get("", summary="Check whether the current user has an API key", response_model=ApiKeyStatus)
async def get_api_key(user: UserDep, db: DbDep) -> JsonResponse:
    return JsonResponse((await service.get(db, user_id=user.id)).model_dump())


@router.delete(
    "",
    status_code=204,
    summary="Revoke the current API key",
    responses=error_responses(404, e404="The user has no active API key"),
)
async def delete_api_key(user: UserDep, db: DbDep) -> Response:
    await service.delete(db, user_id=user.id)
    return Response(status_code=204)
