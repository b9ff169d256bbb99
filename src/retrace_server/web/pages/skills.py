"""Skills: the list, one skill with its version history, and what each version changed."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from retrace_server.errors import ApiError, DomainError
from retrace_server.pagination import Page
from retrace_server.skills import service as skills
from retrace_server.web.auth import SessionDep
from retrace_server.web.templating import pretty_json, render
from retrace_server.web.textdiff import word_diff

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
TEXT_FIELDS = ("prompt_template", "description")


@router.get("/skills")
async def skills_page(
    request: Request, signed_in: SessionDep, offset: Annotated[int, Query(ge=0)] = 0
) -> Response:
    rows, total = await skills.list_skills(
        request.app.state.db, user_id=signed_in.user.id, page=Page(PAGE_SIZE, offset)
    )
    return render(request, "skills.html", skills=rows, total=total, offset=offset, limit=PAGE_SIZE)


@router.get("/skills/{skill_id}")
async def skill_page(skill_id: str, request: Request, signed_in: SessionDep) -> Response:
    db = request.app.state.db
    skill = await skills.get(db, user_id=signed_in.user.id, skill_id=skill_id)
    versions: list[dict[str, Any]] = []
    if skill.get("version"):
        try:
            versions, _ = await skills.list_versions(
                db, user_id=signed_in.user.id, skill_id=skill_id, page=Page(100, 0)
            )
        except (ApiError, DomainError):
            versions = []  # another user's public skill: its history stays with its owner
    return render(request, "skill.html", skill=skill, versions=versions)


def _shown(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else pretty_json(value)


def changes(previous: dict[str, Any] | None, current: dict[str, Any]) -> list[dict[str, Any]]:
    """Each changed field of a version, before and after, with a word diff of text."""
    out = []
    for field in current.get("changed_fields") or []:
        before = _shown(previous.get(field)) if previous else ""
        after = _shown(current.get(field))
        out.append({"field": field, "before": before, "after": after, "words": word_diff(before, after)})
    return out


@router.get("/skills/{skill_id}/versions/{version}")
async def version_page(
    skill_id: str, version: Annotated[int, Path(ge=1)], request: Request, signed_in: SessionDep
) -> Response:
    db = request.app.state.db
    user_id = signed_in.user.id
    current = await skills.get_version(db, user_id=user_id, skill_id=skill_id, version=version)
    previous = (
        await skills.get_version(db, user_id=user_id, skill_id=skill_id, version=version - 1)
        if version > 1
        else None
    )
    return render(
        request,
        "skill_version.html",
        skill_id=skill_id,
        version=current,
        previous=previous,
        changes=changes(previous, current),
    )
