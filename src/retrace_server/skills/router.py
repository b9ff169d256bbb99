from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from retrace_server.auth.dependencies import UserDep
from retrace_server.body import body_schema, parse_body
from retrace_server.deps import DbDep
from retrace_server.jsonutil import JsonResponse, list_envelope
from retrace_server.openapi import error_responses
from retrace_server.pagination import PageDep
from retrace_server.schemas import ListPage
from retrace_server.skills import service
from retrace_server.skills.schemas import SkillCreate, SkillDetail, SkillUpdate, SkillVersionDetail

router = APIRouter(prefix="/api/v1/skills", tags=["skills"])

BODY_ERRORS = error_responses(
    400, 413, 415, e400="Invalid body (including unbalanced template braces); the message names the field"
)
NOT_FOUND = error_responses(404, e404="No such skill for this user")
NAME_TAKEN = error_responses(409, e409="You already have a skill with this name")


@router.post(
    "",
    status_code=201,
    summary="Create a skill (version 1)",
    response_model=SkillDetail,
    responses={**BODY_ERRORS, **NAME_TAKEN},
    openapi_extra=body_schema(SkillCreate),
)
async def create_skill(request: Request, user: UserDep, db: DbDep) -> JsonResponse:
    payload = await parse_body(request, SkillCreate)
    return JsonResponse(await service.create(db, user_id=user.id, payload=payload), status_code=201)


@router.get(
    "",
    summary="List skills, newest first; filters combine",
    response_model=ListPage[SkillDetail],
    responses=error_responses(400),
)
async def list_skills(
    user: UserDep,
    db: DbDep,
    page: PageDep,
    scope: Annotated[
        str | None, Query(max_length=256, description="Exact scope, e.g. project:checkout")
    ] = None,
    tags: Annotated[
        str | None, Query(max_length=2000, description="Comma-separated; skills having all")
    ] = None,
    include_public: Annotated[bool, Query(description="Also other users' public skills")] = False,
) -> JsonResponse:
    tag_list = [tag.strip() for tag in (tags or "").split(",") if tag.strip()]
    data, total = await service.list_skills(
        db, user_id=user.id, page=page, scope=scope, tags=tag_list, include_public=include_public
    )
    return JsonResponse(list_envelope(data, total=total, limit=page.limit, offset=page.offset))


@router.get(
    "/{skill_id}",
    summary="Get a skill (yours, or a public one)",
    response_model=SkillDetail,
    responses=NOT_FOUND,
)
async def get_skill(skill_id: str, user: UserDep, db: DbDep) -> JsonResponse:
    return JsonResponse(await service.get(db, user_id=user.id, skill_id=skill_id))


@router.patch(
    "/{skill_id}",
    summary="Change the given fields as a new version",
    response_model=SkillDetail,
    responses={
        **BODY_ERRORS,
        **NOT_FOUND,
        **error_responses(409, e409="Another of your skills has this name, or a concurrent update won"),
    },
    openapi_extra=body_schema(SkillUpdate),
)
async def update_skill(skill_id: str, request: Request, user: UserDep, db: DbDep) -> JsonResponse:
    payload = await parse_body(request, SkillUpdate)
    return JsonResponse(await service.update(db, user_id=user.id, skill_id=skill_id, payload=payload))


@router.delete(
    "/{skill_id}",
    status_code=204,
    summary="Delete a skill and its history",
    responses=NOT_FOUND,
)
async def delete_skill(skill_id: str, user: UserDep, db: DbDep) -> Response:
    await service.delete_skill(db, user_id=user.id, skill_id=skill_id)
    return Response(status_code=204)


@router.get(
    "/{skill_id}/versions",
    summary="List every version of a skill, newest first",
    response_model=ListPage[SkillVersionDetail],
    responses={**error_responses(400), **NOT_FOUND},
)
async def list_versions(skill_id: str, user: UserDep, db: DbDep, page: PageDep) -> JsonResponse:
    data, total = await service.list_versions(db, user_id=user.id, skill_id=skill_id, page=page)
    return JsonResponse(list_envelope(data, total=total, limit=page.limit, offset=page.offset))


@router.get(
    "/{skill_id}/versions/{version}",
    summary="Get one version of a skill",
    response_model=SkillVersionDetail,
    responses=error_responses(400, 404, e404="No such skill or version for this user"),
)
async def get_version(
    skill_id: str, version: Annotated[int, Path(ge=1)], user: UserDep, db: DbDep
) -> JsonResponse:
    return JsonResponse(await service.get_version(db, user_id=user.id, skill_id=skill_id, version=version))
