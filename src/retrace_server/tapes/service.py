"""Tapes: publish a redacted, frozen copy of a trace; read it publicly by slug."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import orjson
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from retrace_server.db.engine import Database
from retrace_server.db.types import utcnow
from retrace_server.errors import ApiError, not_found
from retrace_server.jsonutil import dumps
from retrace_server.pagination import Page
from retrace_server.tapes.models import Tape
from retrace_server.tapes.redaction import Redactor, make_redactor
from retrace_server.tapes.schemas import TapeCreate
from retrace_server.traces import service as traces

# 12 random bytes: 16 URL-safe characters, 96 bits, not guessable.
SLUG_BYTES = 12
# Every other field of the trace and its spans is redacted (names, models, session ids, errors,
# payloads, and any field added later): these only hold ids, times, kinds and figures, and the
# ids must stay intact for the tape's spans to form their tree.
STRUCTURAL_FIELDS = frozenset(
    {
        "id",
        "trace_id",
        "parent_id",
        "agent_id",
        "parent_agent_id",
        "span_type",
        "status",
        "lossy",
        "started_at",
        "ended_at",
        "created_at",
        "updated_at",
    }
)

SUMMARY_COLUMNS = (
    Tape.slug,
    Tape.trace_id,
    Tape.title,
    Tape.description,
    Tape.visibility,
    Tape.span_count,
    Tape.redacted_count,
    Tape.redactions,
    Tape.view_count,
    Tape.created_at,
)


def tape_url(public_url: str, slug: str) -> str:
    return f"{public_url.rstrip('/')}/api/v1/tapes/{slug}"


def _summary(row: Any, public_url: str) -> dict[str, Any]:
    tape = dict(row._mapping)
    tape["url"] = tape_url(public_url, tape["slug"])
    return tape


def _redact_record(redactor: Redactor, record: dict[str, Any]) -> None:
    for field, value in record.items():
        if field not in STRUCTURAL_FIELDS:
            record[field] = redactor.redact(value)


def _frozen_snapshot(
    trace: dict[str, Any], *, redact: bool, redact_patterns: list[str]
) -> tuple[dict[str, Any], list[Any], dict[str, int]]:
    """The trace and spans as plain JSON (timestamps already as text), redacted unless refused."""
    plain = orjson.loads(dumps(trace))
    spans = plain.pop("spans")
    if not redact:
        return plain, spans, {}
    redactor = make_redactor(redact_patterns)
    for record in (plain, *spans):
        _redact_record(redactor, record)
    return plain, spans, dict(redactor.counts)


async def preview_redactions(
    db: Database, *, user_id: str, trace_id: str, redact_patterns: list[str] | None = None
) -> dict[str, int]:
    """What publishing the trace would redact, per kind; nothing is stored."""
    trace = await traces.get(db, user_id=user_id, trace_id=trace_id)
    _, _, redactions = await asyncio.to_thread(
        _frozen_snapshot, trace, redact=True, redact_patterns=redact_patterns or []
    )
    return redactions


async def create(db: Database, *, user_id: str, payload: TapeCreate, public_url: str) -> dict[str, Any]:
    trace = await traces.get(db, user_id=user_id, trace_id=payload.trace_id)
    # Redacting a large trace is CPU work: keep it off the event loop.
    snapshot, spans, redactions = await asyncio.to_thread(
        _frozen_snapshot, trace, redact=payload.redact, redact_patterns=payload.redact_patterns
    )
    values = {
        "user_id": user_id,
        "trace_id": payload.trace_id,
        "title": payload.title if payload.title is not None else snapshot.get("name"),
        "description": payload.description,
        "visibility": payload.visibility,
        "trace": snapshot,
        "spans": spans,
        "span_count": len(spans),
        "redacted_count": sum(redactions.values()),
        "redactions": redactions,
        "view_count": 0,
        "created_at": utcnow(),
    }
    for _attempt in range(3):
        slug = secrets.token_urlsafe(SLUG_BYTES)
        try:
            async with db.write() as session:
                await session.execute(insert(Tape).values(slug=slug, **values))
                row = (await session.execute(select(*SUMMARY_COLUMNS).where(Tape.slug == slug))).one()
            return _summary(row, public_url)
        except IntegrityError:
            continue  # a slug collision at 96 bits is near impossible; draw again
    raise ApiError(500, "Could not allocate a tape slug")


async def get(db: Database, *, slug: str, public_url: str) -> dict[str, Any]:
    """The tape with its snapshot and spans; each read counts as a view."""
    async with db.write() as session:
        counted = await session.execute(
            update(Tape)
            .where(Tape.slug == slug)
            .values(view_count=Tape.view_count + 1)
            .returning(Tape.view_count)
        )
        if counted.first() is None:
            raise not_found("Tape")
    async with db.read() as session:
        row = (
            await session.execute(select(*SUMMARY_COLUMNS, Tape.trace, Tape.spans).where(Tape.slug == slug))
        ).first()
    if row is None:
        raise not_found("Tape")
    return _summary(row, public_url)


async def list_tapes(
    db: Database, *, page: Page, public_url: str, owner_id: str | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Public tapes of everyone, or every tape of `owner_id`; newest first, without spans."""
    condition = Tape.user_id == owner_id if owner_id is not None else Tape.visibility == "public"
    async with db.read() as session:
        total = (await session.execute(select(func.count()).select_from(Tape).where(condition))).scalar_one()
        rows = await session.execute(
            select(*SUMMARY_COLUMNS)
            .where(condition)
            .order_by(Tape.created_at.desc(), Tape.slug.desc())
            .limit(page.limit)
            .offset(page.offset)
        )
        return [_summary(row, public_url) for row in rows], total


async def delete_tape(db: Database, *, user_id: str, slug: str) -> None:
    async with db.write() as session:
        result = await session.execute(delete(Tape).where(Tape.slug == slug, Tape.user_id == user_id))
        if result.rowcount == 0:  # type: ignore[attr-defined]
            raise not_found("Tape")
