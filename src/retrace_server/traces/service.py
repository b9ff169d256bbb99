"""Traces and their spans: ingestion with upserts and running totals, reads, deletion."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, cast

import orjson
from sqlalchemy import JSON, Select, Table, delete, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import TextClause

from retrace_server.db.engine import Database
from retrace_server.db.types import UtcDateTime, utcnow
from retrace_server.errors import ApiError, not_found
from retrace_server.jsonutil import dumps
from retrace_server.pagination import Page
from retrace_server.traces import sqlite_ingest
from retrace_server.traces.models import SPAN_ROW_COLUMNS, Span, Trace, TraceCount, TraceName
from retrace_server.traces.schemas import SpanIn, TraceCreate, TraceFilters, TraceUpdate

TraceStoredHook = Callable[[AsyncSession, str], Awaitable[None]]
"""Called with the write session and the id of a trace just stored."""

TRACE_COLUMNS = (
    Trace.id,
    Trace.name,
    Trace.status,
    Trace.input,
    Trace.output,
    Trace.metadata_.label("metadata"),
    Trace.session_id,
    Trace.error,
    Trace.lossy,
    Trace.started_at,
    Trace.ended_at,
    Trace.total_tokens,
    Trace.total_cost,
    Trace.total_duration_ms,
    Trace.span_count,
    Trace.created_at,
    Trace.updated_at,
)
SPAN_COLUMNS = (
    Span.id,
    Span.trace_id,
    Span.parent_id,
    Span.span_type,
    Span.name,
    Span.model,
    Span.input,
    Span.output,
    Span.input_tokens,
    Span.output_tokens,
    Span.cost,
    Span.duration_ms,
    Span.metadata_.label("metadata"),
    Span.agent_id,
    Span.parent_agent_id,
    Span.agent_role,
    Span.started_at,
    Span.ended_at,
    Span.error,
)
_SPAN_UPDATABLE = [c.key for c in Span.__table__.columns if c.key not in ("pk", "id", "trace_id", "user_id")]


def new_id() -> str:
    return str(uuid.uuid4())


def _with_extras(metadata: dict[str, Any] | None, extras: dict[str, Any] | None) -> dict[str, Any]:
    """Metadata with a payload's unknown fields added (`model_extra`); metadata wins a clash."""
    merged = dict(metadata) if metadata else {}
    if extras:
        for key, value in extras.items():
            merged.setdefault(key, value)
    return merged


def span_rows(spans: Sequence[SpanIn], *, trace_id: str, user_id: str, now: datetime) -> list[dict[str, Any]]:
    """Rows for the spans table; a span naming another trace is refused with its index."""
    rows = []
    for index, span in enumerate(spans):
        if span.trace_id is not None and span.trace_id != trace_id:
            raise ApiError(400, f"spans[{index}].trace_id: does not match the trace id {trace_id!r}")
        rows.append(
            {
                "id": span.id or new_id(),
                "trace_id": trace_id,
                "user_id": user_id,
                "parent_id": span.parent_id,
                "span_type": span.span_type,
                "name": span.name,
                "model": span.model,
                "input": span.input,
                "output": span.output,
                "input_tokens": span.input_tokens,
                "output_tokens": span.output_tokens,
                "cost": span.cost,
                "duration_ms": span.duration_ms,
                "metadata": _with_extras(span.metadata, span.model_extra),
                "agent_id": span.agent_id,
                "parent_agent_id": span.parent_agent_id,
                "agent_role": span.agent_role,
                "started_at": span.started_at or now,
                "ended_at": span.ended_at,
                "error": span.error,
            }
        )
    return rows


def latest_activity(rows: Sequence[dict[str, Any]], current: datetime | None) -> datetime | None:
    latest = current
    for row in rows:
        moment = row["ended_at"] or row["started_at"]
        if latest is None or moment > latest:
            latest = moment
    return latest


async def upsert_spans(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Stores spans; a span id already stored in the trace is updated, not duplicated."""
    if not rows:
        return
    # Rows are keyed by column name (`metadata`), so the statement targets the table.
    table = cast(Table, Span.__table__)
    if session.get_bind().dialect.name == "postgresql":
        stmt: Any = postgresql.insert(table)
    else:
        stmt = sqlite.insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.trace_id, table.c.id],
        set_={key: getattr(stmt.excluded, key) for key in _SPAN_UPDATABLE},
    )
    await session.execute(stmt, last_of_each_span(rows))


def last_of_each_span(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A batch may name one span twice (start, then end): the last one wins."""
    return list({row["id"]: row for row in rows}.values())


# What a span's end reports; everything else about a span is known when it starts.
SPAN_END_FIELDS = ("output", "ended_at", "duration_ms", "input_tokens", "output_tokens", "cost", "error")


async def stored_span_rows(
    session: AsyncSession, *, trace_id: str, span_ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """The stored spans of a trace among `span_ids`, as rows `upsert_spans` accepts, by span id."""
    if not span_ids:
        return {}
    result = await session.execute(
        select(*SPAN_ROW_COLUMNS).where(Span.trace_id == trace_id, Span.id.in_(set(span_ids)))
    )
    return {row.id: dict(row._mapping) for row in result}


def merge_span_row(
    stored: dict[str, Any] | None, incoming: dict[str, Any], *, carried: Sequence[str]
) -> dict[str, Any]:
    """One span that arrives in parts (a stream's start and end, maybe re-sent or out of order).

    The incoming part's `carried` fields win where they hold a value; every other stored value
    is kept, so a late or repeated part never wipes what another part stored. Metadata is merged.
    """
    if stored is None:
        return dict(incoming)
    merged = dict(stored)
    for key, value in incoming.items():
        if key == "metadata":
            merged["metadata"] = {**(stored.get("metadata") or {}), **(value or {})}
        elif value is not None and (key in carried or stored.get(key) is None):
            merged[key] = value
    return merged


def _totals(
    *,
    span_count: int,
    tokens: int | None,
    cost: float | None,
    started_at: datetime,
    ended_at: datetime | None,
    last_activity_at: datetime | None,
    client_totals: dict[str, Any],
) -> dict[str, Any]:
    """Totals come from the spans (None: no span carries that figure); the client's stand in otherwise."""
    if ended_at is not None:
        duration_ms = int((ended_at - started_at).total_seconds() * 1000)
    elif client_totals.get("total_duration_ms") is not None:
        duration_ms = client_totals["total_duration_ms"]
    elif last_activity_at is not None:
        duration_ms = int((last_activity_at - started_at).total_seconds() * 1000)
    else:
        duration_ms = 0
    return {
        "span_count": span_count,
        "total_tokens": tokens if tokens is not None else (client_totals.get("total_tokens") or 0),
        "total_cost": float(cost) if cost is not None else float(client_totals.get("total_cost") or 0.0),
        "total_duration_ms": max(0, duration_ms),
        "last_activity_at": last_activity_at,
    }


async def refresh_totals(
    session: AsyncSession,
    *,
    trace_id: str,
    started_at: datetime,
    ended_at: datetime | None,
    last_activity_at: datetime | None,
    client_totals: dict[str, Any],
) -> None:
    """Recomputes a stored trace's totals from all its stored spans."""
    span_count, tokens, cost, has_tokens, has_cost = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(
                    func.sum(func.coalesce(Span.input_tokens, 0) + func.coalesce(Span.output_tokens, 0)), 0
                ),
                func.coalesce(func.sum(Span.cost), 0.0),
                func.count(Span.input_tokens) + func.count(Span.output_tokens),
                func.count(Span.cost),
            ).where(Span.trace_id == trace_id)
        )
    ).one()
    values = _totals(
        span_count=span_count,
        tokens=tokens if has_tokens else None,
        cost=cost if has_cost else None,
        started_at=started_at,
        ended_at=ended_at,
        last_activity_at=last_activity_at,
        client_totals=client_totals,
    )
    await session.execute(update(Trace).where(Trace.id == trace_id).values(**values, updated_at=utcnow()))


def _batch_totals(
    rows: list[dict[str, Any]],
    *,
    started_at: datetime,
    ended_at: datetime | None,
    client_totals: dict[str, Any],
) -> dict[str, Any]:
    """`refresh_totals` for a new trace, whose spans are all in hand."""
    tokens = [r[k] for r in rows for k in ("input_tokens", "output_tokens") if r[k] is not None]
    costs = [r["cost"] for r in rows if r["cost"] is not None]
    return _totals(
        span_count=len(rows),
        tokens=sum(tokens) if tokens else None,
        cost=sum(costs) if costs else None,
        started_at=started_at,
        ended_at=ended_at,
        last_activity_at=latest_activity(rows, None),
        client_totals=client_totals,
    )


def trace_row(
    payload: TraceCreate, *, trace_id: str, user_id: str, now: datetime, last_activity_at: datetime | None
) -> dict[str, Any]:
    """Values of a new traces row; totals start at zero until `refresh_totals`."""
    return {
        "id": trace_id,
        "user_id": user_id,
        "name": payload.name,
        "status": payload.status,
        "input": payload.input,
        "output": payload.output,
        "metadata_": _with_extras(payload.metadata, payload.model_extra),
        "session_id": payload.session_id,
        "error": payload.error,
        "lossy": payload.lossy,
        "started_at": payload.started_at or now,
        "ended_at": payload.ended_at,
        "last_activity_at": last_activity_at,
        "total_tokens": 0,
        "total_cost": 0.0,
        "total_duration_ms": 0,
        "span_count": 0,
        "created_at": now,
        "updated_at": now,
    }


async def create(
    db: Database, *, user_id: str, payload: TraceCreate, on_stored: TraceStoredHook | None = None
) -> dict[str, Any]:
    """`on_stored` runs in the same transaction once the trace and its spans are written."""
    now = utcnow()
    trace_id = payload.id or new_id()
    rows = last_of_each_span(span_rows(payload.spans, trace_id=trace_id, user_id=user_id, now=now))
    values = trace_row(payload, trace_id=trace_id, user_id=user_id, now=now, last_activity_at=None)
    values.update(
        _batch_totals(
            rows,
            started_at=values["started_at"],
            ended_at=payload.ended_at,
            client_totals=payload.model_dump(include={"total_tokens", "total_cost", "total_duration_ms"}),
        )
    )
    try:
        if db.is_sqlite and on_stored is None:
            await sqlite_ingest.insert_trace(db, values, rows)
        else:
            async with db.write() as session:
                await session.execute(insert(Trace), values)
                await upsert_spans(session, rows)
                if on_stored is not None:
                    await on_stored(session, trace_id)
    except (IntegrityError, sqlite3.IntegrityError):
        # The primary key says the id is taken (by this user or, across processes, a racing request).
        raise ApiError(
            409, f"Trace {trace_id!r} already exists; use PATCH /api/v1/traces/{{id}} to add to it"
        ) from None
    return {
        column.key: values[column.key if column.key != "metadata" else "metadata_"]
        for column in TRACE_COLUMNS
    }


def apply_update(trace: Trace, payload: TraceUpdate, *, now: datetime) -> None:
    """Sets the terminal fields the payload carries; `lossy` only ever turns on."""
    given = payload.model_fields_set
    for field in ("name", "status", "output", "session_id", "error", "ended_at", "started_at"):
        if field in given:
            setattr(trace, field, getattr(payload, field))
    if payload.lossy is not None:
        trace.lossy = trace.lossy or payload.lossy
    extras = payload.extras()
    if "metadata" in given or extras:
        trace.metadata_ = {**(trace.metadata_ or {}), **(payload.metadata or {}), **extras}
    if trace.status != "running" and trace.ended_at is None:
        trace.ended_at = now


async def update_trace(db: Database, *, user_id: str, trace_id: str, payload: TraceUpdate) -> dict[str, Any]:
    now = utcnow()
    rows = span_rows(payload.spans, trace_id=trace_id, user_id=user_id, now=now)
    async with db.write() as session:
        trace = (
            await session.execute(select(Trace).where(Trace.id == trace_id, Trace.user_id == user_id))
        ).scalar_one_or_none()
        if trace is None:
            raise not_found("Trace")
        apply_update(trace, payload, now=now)
        await session.flush()
        await upsert_spans(session, rows)
        await refresh_totals(
            session,
            trace_id=trace_id,
            started_at=trace.started_at,
            ended_at=trace.ended_at,
            last_activity_at=latest_activity(rows, trace.last_activity_at),
            client_totals=payload.model_dump(include={"total_tokens", "total_cost", "total_duration_ms"}),
        )
        return await _owned_trace(session, user_id=user_id, trace_id=trace_id)


# Up to this many skipped traces, one query reads the page; beyond, ids come first.
_SKIP_WITH_ROWS = 1000


def _name_filter(query: Select[Any], *, user_id: str, name: str) -> Select[Any]:
    escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    # Runs repeat a handful of names: match the distinct names, then read traces by index.
    matching = select(TraceName.name).where(
        TraceName.user_id == user_id, TraceName.name.ilike(f"%{escaped}%", escape="\\")
    )
    return query.where(Trace.name.in_(matching))


def _filtered(query: Select[Any], *, user_id: str, filters: TraceFilters) -> Select[Any]:
    query = query.where(Trace.user_id == user_id)
    if filters.status is not None:
        query = query.where(Trace.status == filters.status)
    if filters.session_id is not None:
        query = query.where(Trace.session_id == filters.session_id)
    if filters.name:
        query = _name_filter(query, user_id=user_id, name=filters.name)
    if filters.since is not None:
        query = query.where(Trace.started_at >= filters.since)
    if filters.until is not None:
        query = query.where(Trace.started_at < filters.until)
    return query


async def _count(session: AsyncSession, *, user_id: str, filters: TraceFilters) -> int:
    if filters.model_dump(exclude_none=True, exclude={"status"}) == {}:
        counted = select(func.coalesce(func.sum(TraceCount.count), 0)).where(TraceCount.user_id == user_id)
        if filters.status is not None:
            counted = counted.where(TraceCount.status == filters.status)
        return int((await session.execute(counted)).scalar_one())
    query = _filtered(select(func.count()).select_from(Trace), user_id=user_id, filters=filters)
    return int((await session.execute(query)).scalar_one())


async def list_traces(
    db: Database, *, user_id: str, filters: TraceFilters, page: Page
) -> tuple[list[dict[str, Any]], int]:
    """A page of traces, newest first, and how many match."""
    async with db.read() as session:
        total = await _count(session, user_id=user_id, filters=filters)
        if page.offset >= total:
            return [], total
        from_far_end = page.offset > total // 2
        order: tuple[Any, ...]
        if from_far_end:
            # Deep pages are read from the other end of the index, then put back in order.
            limit = min(page.limit, total - page.offset)
            skip = total - page.offset - limit
            order = (Trace.started_at, Trace.id)
        else:
            limit, skip = page.limit, page.offset
            order = (Trace.started_at.desc(), Trace.id.desc())
        if skip <= _SKIP_WITH_ROWS:
            query = _filtered(select(*TRACE_COLUMNS), user_id=user_id, filters=filters)
            rows = await session.execute(query.order_by(*order).limit(limit).offset(skip))
            traces = [dict(row._mapping) for row in rows]
        else:
            # Skip through the covering index alone, then read only the rows shown.
            ids = _filtered(select(Trace.id), user_id=user_id, filters=filters)
            page_ids = (await session.execute(ids.order_by(*order).limit(limit).offset(skip))).scalars().all()
            rows = await session.execute(select(*TRACE_COLUMNS).where(Trace.id.in_(page_ids)))
            by_id = {row.id: dict(row._mapping) for row in rows}
            traces = [by_id[trace_id] for trace_id in page_ids if trace_id in by_id]
        return (traces[::-1] if from_far_end else traces), total


async def get(db: Database, *, user_id: str, trace_id: str) -> dict[str, Any]:
    """The trace with all its spans in start order."""
    async with db.read() as session:
        trace = await _owned_trace(session, user_id=user_id, trace_id=trace_id)
        trace["spans"] = await spans_in_order(session, trace_id=trace_id)
        return trace


async def spans_in_order(session: AsyncSession, *, trace_id: str) -> list[dict[str, Any]]:
    """A trace's spans as the API lists them: in start order."""
    rows = await session.execute(
        select(*SPAN_COLUMNS).where(Span.trace_id == trace_id).order_by(Span.started_at, Span.pk)
    )
    return [dict(row._mapping) for row in rows]


async def get_json(db: Database, *, user_id: str, trace_id: str) -> bytes:
    """`get`, rendered for the API; the database renders each span's JSON, so no span is decoded."""
    async with db.read() as session:
        trace = await _owned_trace(session, user_id=user_id, trace_id=trace_id)
        connection = await session.connection()
        rendered = await connection.execute(_SPANS_AS_JSON[db.dialect], {"trace_id": trace_id})
        spans = ",".join(rendered.scalars()).encode()
    trace["spans"] = orjson.Fragment(b"[" + spans + b"]")
    return dumps(trace)


async def _owned_trace(session: AsyncSession, *, user_id: str, trace_id: str) -> dict[str, Any]:
    owned = select(*TRACE_COLUMNS).where(Trace.id == trace_id, Trace.user_id == user_id)
    row = (await session.execute(owned)).first()
    if row is None:
        raise not_found("Trace")
    return dict(row._mapping)


def _spans_as_json(dialect: str) -> TextClause:
    """One JSON object per span, in start order, with the API's keys and ISO `Z` timestamps."""
    pairs = []
    for column in SPAN_COLUMNS:
        name = Span.__table__.c[column.key].name
        if isinstance(column.type, JSON):
            value = f"json({name})" if dialect == "sqlite" else name
        elif isinstance(column.type, UtcDateTime) and dialect != "sqlite":
            value = f"""to_char({name} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
        else:
            value = name
        pairs.append(f"'{column.key}', {value}")
    build = "json_object" if dialect == "sqlite" else "json_build_object"
    cast_text = "" if dialect == "sqlite" else "::text"
    return text(
        f"SELECT {build}({', '.join(pairs)}){cast_text} FROM spans "
        "WHERE trace_id = :trace_id ORDER BY started_at, pk"
    )


_SPANS_AS_JSON = {dialect: _spans_as_json(dialect) for dialect in ("sqlite", "postgresql")}


async def delete_trace(db: Database, *, user_id: str, trace_id: str) -> None:
    async with db.write() as session:
        result = await session.execute(delete(Trace).where(Trace.id == trace_id, Trace.user_id == user_id))
        if result.rowcount == 0:  # type: ignore[attr-defined]
            raise not_found("Trace")
