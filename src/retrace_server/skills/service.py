"""Skills: create, read, filter, and update with a full, gap-free version history."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, delete, func, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from retrace_server.db.engine import Database
from retrace_server.db.types import utcnow
from retrace_server.pagination import Page
from retrace_server.skills.errors import (
    SkillChangedConcurrently,
    SkillNameTaken,
    SkillNotFound,
    SkillVersionNotFound,
)
from retrace_server.skills.models import Skill, SkillTag, SkillVersion
from retrace_server.skills.schemas import CONTENT_FIELDS, SkillCreate, SkillUpdate
from retrace_server.skills.templates import template_variables


def _attribute(field: str) -> str:
    return "metadata_" if field == "metadata" else field


def _content(skill: Skill) -> dict[str, Any]:
    return {field: getattr(skill, _attribute(field)) for field in CONTENT_FIELDS}


def _skill_dict(skill: Skill) -> dict[str, Any]:
    content = _content(skill)
    return {
        "id": skill.id,
        **content,
        "variables": template_variables(content["prompt_template"]),
        "version": skill.version,
        "created_at": skill.created_at,
        "updated_at": skill.updated_at,
    }


def _version_dict(row: SkillVersion) -> dict[str, Any]:
    return {
        "skill_id": row.skill_id,
        "version": row.version,
        **row.content,
        "variables": template_variables(row.content["prompt_template"]),
        "changed_fields": row.changed_fields,
        "created_at": row.created_at,
    }


async def _name_taken(
    session: AsyncSession, *, user_id: str, name: str, except_id: str | None = None
) -> bool:
    query = select(Skill.id).where(Skill.user_id == user_id, Skill.name == name)
    if except_id is not None:
        query = query.where(Skill.id != except_id)
    return (await session.execute(query)).first() is not None


async def _record_version(session: AsyncSession, skill: Skill, changed_fields: list[str]) -> None:
    await session.execute(
        insert(SkillVersion).values(
            skill_id=skill.id,
            version=skill.version,
            content=_content(skill),
            changed_fields=changed_fields,
            created_at=skill.updated_at,
        )
    )


async def _replace_tags(session: AsyncSession, *, skill_id: str, tags: list[str], replace: bool) -> None:
    if replace:
        await session.execute(delete(SkillTag).where(SkillTag.skill_id == skill_id))
    if tags:
        await session.execute(insert(SkillTag), [{"skill_id": skill_id, "tag": tag} for tag in tags])


async def create(db: Database, *, user_id: str, payload: SkillCreate) -> dict[str, Any]:
    now = utcnow()
    skill = Skill(id=str(uuid.uuid4()), user_id=user_id, version=1, created_at=now, updated_at=now)
    for field in CONTENT_FIELDS:
        setattr(skill, _attribute(field), getattr(payload, field))
    try:
        async with db.write() as session:
            if await _name_taken(session, user_id=user_id, name=payload.name):
                raise SkillNameTaken(payload.name)
            session.add(skill)
            await session.flush()
            await _replace_tags(session, skill_id=skill.id, tags=payload.tags, replace=False)
            await _record_version(session, skill, list(CONTENT_FIELDS))
    except IntegrityError:
        raise SkillNameTaken(payload.name) from None
    return _skill_dict(skill)


def _readable_by(user_id: str) -> ColumnElement[bool]:
    return or_(Skill.user_id == user_id, Skill.is_public.is_(True))


async def get(db: Database, *, user_id: str, skill_id: str) -> dict[str, Any]:
    """One of the caller's skills, or another user's public one."""
    async with db.read() as session:
        skill = (
            await session.execute(select(Skill).where(Skill.id == skill_id, _readable_by(user_id)))
        ).scalar_one_or_none()
    if skill is None:
        raise SkillNotFound()
    return _skill_dict(skill)


async def list_skills(
    db: Database,
    *,
    user_id: str,
    page: Page,
    scope: str | None = None,
    tags: list[str] | None = None,
    include_public: bool = False,
) -> tuple[list[dict[str, Any]], int]:
    """The caller's skills (plus everyone's public ones on request); all filters must hold."""
    conditions: list[ColumnElement[bool]] = [
        _readable_by(user_id) if include_public else Skill.user_id == user_id
    ]
    if scope is not None:
        conditions.append(Skill.scope == scope)
    for tag in tags or []:
        conditions.append(Skill.id.in_(select(SkillTag.skill_id).where(SkillTag.tag == tag)))
    async with db.read() as session:
        total = (
            await session.execute(select(func.count()).select_from(Skill).where(*conditions))
        ).scalar_one()
        skills = await session.execute(
            select(Skill)
            .where(*conditions)
            .order_by(Skill.created_at.desc(), Skill.id.desc())
            .limit(page.limit)
            .offset(page.offset)
        )
        return [_skill_dict(skill) for skill in skills.scalars()], total


async def update(db: Database, *, user_id: str, skill_id: str, payload: SkillUpdate) -> dict[str, Any]:
    """Applies the given fields as a new version; a PATCH that changes nothing keeps the version."""
    changes = payload.changes()
    try:
        async with db.write() as session:
            # The row lock (PostgreSQL) or the write transaction (SQLite, BEGIN IMMEDIATE) makes
            # concurrent PATCHes take turns, so each one reads the version the previous one wrote.
            skill = (
                await session.execute(
                    select(Skill).where(Skill.id == skill_id, Skill.user_id == user_id).with_for_update()
                )
            ).scalar_one_or_none()
            if skill is None:
                raise SkillNotFound()
            current = _content(skill)
            changed = [
                field for field in CONTENT_FIELDS if field in changes and changes[field] != current[field]
            ]
            if not changed:
                return _skill_dict(skill)
            if "name" in changed and await _name_taken(
                session, user_id=user_id, name=changes["name"], except_id=skill_id
            ):
                raise SkillNameTaken(changes["name"])
            for field in changed:
                setattr(skill, _attribute(field), changes[field])
            skill.version += 1
            skill.updated_at = utcnow()
            await session.flush()
            if "tags" in changed:
                await _replace_tags(session, skill_id=skill_id, tags=changes["tags"], replace=True)
            await _record_version(session, skill, changed)
    except IntegrityError:
        raise SkillChangedConcurrently() from None
    return _skill_dict(skill)


async def delete_skill(db: Database, *, user_id: str, skill_id: str) -> None:
    async with db.write() as session:
        result = await session.execute(delete(Skill).where(Skill.id == skill_id, Skill.user_id == user_id))
        if result.rowcount == 0:  # type: ignore[attr-defined]
            raise SkillNotFound()


async def _owned(session: AsyncSession, *, user_id: str, skill_id: str) -> None:
    # History stays with the owner: a skill made public later may have private past versions.
    found = await session.execute(select(Skill.id).where(Skill.id == skill_id, Skill.user_id == user_id))
    if found.first() is None:
        raise SkillNotFound()


async def list_versions(
    db: Database, *, user_id: str, skill_id: str, page: Page
) -> tuple[list[dict[str, Any]], int]:
    """Every version of one of the caller's skills, newest first."""
    async with db.read() as session:
        await _owned(session, user_id=user_id, skill_id=skill_id)
        total = (
            await session.execute(
                select(func.count()).select_from(SkillVersion).where(SkillVersion.skill_id == skill_id)
            )
        ).scalar_one()
        rows = await session.execute(
            select(SkillVersion)
            .where(SkillVersion.skill_id == skill_id)
            .order_by(SkillVersion.version.desc())
            .limit(page.limit)
            .offset(page.offset)
        )
        return [_version_dict(row) for row in rows.scalars()], total


async def get_version(db: Database, *, user_id: str, skill_id: str, version: int) -> dict[str, Any]:
    async with db.read() as session:
        await _owned(session, user_id=user_id, skill_id=skill_id)
        row = (
            await session.execute(
                select(SkillVersion).where(SkillVersion.skill_id == skill_id, SkillVersion.version == version)
            )
        ).scalar_one_or_none()
    if row is None:
        raise SkillVersionNotFound(version)
    return _version_dict(row)
