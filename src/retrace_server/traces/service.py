"""Traces and their spans: create, update and delete through the ingest module; reads.

Every read renders its rows as JSON in the database, with one timestamp form (ISO 8601 UTC,
microseconds, `Z`), so a trace reads the same whichever path or database answers it, and stored
payloads are never decoded and encoded again in Python.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from typing import Any

import orjson
from sqlalchemy import JSON, Select, bindparam, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement, TextClause

from retrace_server.db.engine import Database
from retrace_server.db.types import UtcDateTime
from retrace_server.errors import InvalidInput
from retrace_server.ingest import Ingestor, TraceWrite, WriteOutcome, api_trace
from retrace_server.ingest.errors import TraceNotFound
from retrace_server.pagination import Page
from retrace_server.traces import answers
from retrace_server.traces.models import Span, Trace, TraceCount, TraceName
from retrace_server.traces.schemas import TraceCreate, TraceFilters, TraceUpdate
from retrace_server.traces.writes import create_write, update_write

TRACE_API_COLUMNS = (
    "id",
    "name",
    "status",
    "input",
    "output",
    "metadata",
    "session_id",
    "project_id",
    "error",
    "lossy",
    "started_at",
    "ended_at",
    "total_tokens",
    "total_cost",
    "total_duration_ms",
    "span_count",
    "created_at",
    "updated_at",
)
SPAN_API_COLUMNS = (
    "id",
    "trace_id",
    "parent_id",
    "span_type",
    "name",
    "model",
    "input",
    "output",
    "input_tokens",
    "output_tokens",
    "cost",
    "cost_source",
    "duration_ms",
    "metadata",
    "agent_id",
    "parent_agent_id",
    "agent_role",
    "started_at",
    "ended_at",
    "error",
)


def outcome_trace(outcome: WriteOutcome) -> dict[str, Any]:
    """The trace a write stored, as the API answers it; raises the write's refusal."""
    if outcome.error is not None:
        raise outcome.error
    assert outcome.trace is not None
    return api_trace(outcome.trace)


async def create(
    ingestor: Ingestor, *, user_id: str, payload: TraceCreate, tier: str | None = None
) -> dict[str, Any]:
    """A new trace with its batch of spans; `TraceExists` when the user has one with this id.
    `tier`, the user's plan where known, saves the quota check a read."""
    write = create_write(payload)
    if tier is not None:
        write.context["tier"] = tier
    [outcome] = await ingestor.write(user_id=user_id, writes=[write])
    return outcome_trace(outcome)


async def update(ingestor: Ingestor, *, user_id: str, trace_id: str, payload: TraceUpdate) -> dict[str, Any]:
    """Sets the fields the payload names and appends its spans; `TraceNotFound` for no such trace."""
    [outcome] = await ingestor.write(user_id=user_id, writes=[update_write(payload, trace_id=trace_id)])
    return outcome_trace(outcome)


async def write(ingestor: Ingestor, *, user_id: str, write: TraceWrite) -> dict[str, Any]:
    """Any other write of one trace (replays, fork bookkeeping), answered like `create`."""
    [outcome] = await ingestor.write(user_id=user_id, writes=[write])
    return outcome_trace(outcome)


async def delete(ingestor: Ingestor, *, user_id: str, trace_id: str) -> None:
    if not await ingestor.delete(user_id=user_id, trace_id=trace_id):
        raise TraceNotFound()


# ---- reads


def _json_object(
    dialect: str,
    table: Any,
    columns: Iterable[str],
    alias: str = "",
    extra: Iterable[answers.AnswerField] = (),
) -> str:
    """A SQL expression building one row's JSON object with the API's keys and timestamps,
    and the `extra` fields other domains add."""
    prefix = f"{alias}." if alias else ""
    pairs = []
    for key in columns:
        column = table.c[key]
        name = f"{prefix}{column.name}"
        if isinstance(column.type, JSON):
            value = f"json({name})" if dialect == "sqlite" else name
        elif isinstance(column.type, UtcDateTime) and dialect != "sqlite":
            value = f"""to_char({name} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
        elif key == "lossy" and dialect == "sqlite":
            value = f"json(CASE WHEN {name} THEN 'true' ELSE 'false' END)"
        else:
            value = name
        pairs.append(f"'{key}', {value}")
    pairs.extend(f"'{field.key}', {field.sql[dialect]}" for field in extra)
    build = "json_object" if dialect == "sqlite" else "json_build_object"
    cast_text = "" if dialect == "sqlite" else "::text"
    return f"{build}({', '.join(pairs)}){cast_text}"


def _statements(dialect: str) -> dict[str, TextClause]:
    trace = _json_object(dialect, Trace.__table__, TRACE_API_COLUMNS)
    answer = _json_object(dialect, Trace.__table__, TRACE_API_COLUMNS, extra=answers.fields(in_list=False))
    span = _json_object(dialect, Span.__table__, SPAN_API_COLUMNS)
    where_trace = "FROM traces WHERE user_id = :user_id AND id = :trace_id"
    return {
        "trace": text(f"SELECT {trace} {where_trace}"),
        "answer": text(f"SELECT {answer} {where_trace}"),
        "list_item": text(
            _json_object(dialect, Trace.__table__, TRACE_API_COLUMNS, extra=answers.fields(in_list=True))
        ),
        "spans": text(
            f"SELECT {span} FROM spans WHERE user_id = :user_id AND trace_id = :trace_id "
            "ORDER BY started_at, pk"
        ),
        # By primary key alone: given a user condition too, SQLite walks the user's index instead.
        "spans_by_key": text(f"SELECT pk, user_id, {span} FROM spans WHERE pk IN :pks").bindparams(
            bindparam("pks", expanding=True)
        ),
    }


_built: dict[str, tuple[int, dict[str, TextClause]]] = {}


def _statements_for(dialect: str) -> dict[str, TextClause]:
    """The read statements, built again after another domain registers an answer field."""
    built = _built.get(dialect)
    if built is None or built[0] != answers.revision:
        built = (answers.revision, _statements(dialect))
        _built[dialect] = built
    return built[1]


async def get_json(
    db: Database, *, user_id: str, trace_id: str, spans: bool = True, answer: bool = True
) -> bytes:
    """The trace with all its spans in start order (or none), as the API's JSON answer; with
    `answer=False`, without the fields other domains add (`answers`), as other domains read it."""
    statements = _statements_for(db.dialect)
    params = {"user_id": user_id, "trace_id": trace_id}
    async with db.read() as session:
        connection = await session.connection()
        trace = (await connection.execute(statements["answer" if answer else "trace"], params)).scalar()
        if trace is None:
            raise TraceNotFound()
        if not spans:
            return str(trace).encode()
        rendered = ",".join((await connection.execute(statements["spans"], params)).scalars())
    return b"".join((trace[:-1].encode(), b',"spans":[', rendered.encode(), b"]}"))


async def get(db: Database, *, user_id: str, trace_id: str, spans: bool = True) -> dict[str, Any]:
    """`get_json` without other domains' fields, decoded: what other domains read (forks, tapes)."""
    trace: dict[str, Any] = orjson.loads(
        await get_json(db, user_id=user_id, trace_id=trace_id, spans=spans, answer=False)
    )
    return trace


async def spans_by_key(
    session: AsyncSession, *, user_id: str, pks: builtins.list[int]
) -> dict[int, dict[str, Any]]:
    """The user's spans among these row keys (search hits), as the API answers spans."""
    if not pks:
        return {}
    connection = await session.connection()
    rows = await connection.execute(_statements_for(connection.dialect.name)["spans_by_key"], {"pks": pks})
    return {pk: orjson.loads(span) for pk, owner, span in rows if owner == user_id}


async def existing(db: Database, *, user_id: str, trace_ids: Iterable[str]) -> set[str]:
    """Which of these traces the user has."""
    wanted = builtins.list(set(trace_ids))
    if not wanted:
        return set()
    async with db.read() as session:
        rows = await session.execute(select(Trace.id).where(Trace.user_id == user_id, Trace.id.in_(wanted)))
        return set(rows.scalars())


async def has_span(db: Database, *, user_id: str, trace_id: str, span_id: str) -> bool:
    """Whether the user's trace holds this span (`TraceNotFound` without the trace)."""
    async with db.read() as session:
        if (
            await session.execute(select(Trace.id).where(Trace.user_id == user_id, Trace.id == trace_id))
        ).first() is None:
            raise TraceNotFound()
        found = await session.execute(
            select(Span.pk).where(Span.user_id == user_id, Span.trace_id == trace_id, Span.id == span_id)
        )
        return found.first() is not None


# Filters that other domains answer (`answers.register_filter`).
EXTENSION_FILTERS = ("golden", "regression")

# Up to this many skipped traces, one query reads the page; beyond, ids come first.
_SKIP_WITH_ROWS = 1000


def _name_filter(query: Select[Any], *, user_id: str, name: str) -> Select[Any]:
    escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    # Runs repeat a handful of names: match the distinct names, then read traces by index.
    matching = select(TraceName.name).where(
        TraceName.user_id == user_id, TraceName.name.ilike(f"%{escaped}%", escape="\\")
    )
    return query.where(Trace.name.in_(matching))


def _conditions(filters: TraceFilters, *, user_id: str) -> builtins.list[ColumnElement[bool]]:
    conditions: builtins.list[ColumnElement[bool]] = []
    if filters.status is not None:
        conditions.append(Trace.status == filters.status)
    if filters.session_id is not None:
        conditions.append(Trace.session_id == filters.session_id)
    if filters.project_id is not None:
        conditions.append(Trace.project_id == filters.project_id)
    if filters.since is not None:
        conditions.append(Trace.started_at >= filters.since)
    if filters.until is not None:
        conditions.append(Trace.started_at < filters.until)
    for name in EXTENSION_FILTERS:
        value = getattr(filters, name)
        if value is None:
            continue
        condition = answers.list_filter(name)
        if condition is None:
            raise InvalidInput(f"{name}: this server does not filter traces on it")
        conditions.append(condition(user_id, value))
    return conditions


def _filtered(query: Select[Any], *, user_id: str, filters: TraceFilters) -> Select[Any]:
    query = query.where(Trace.user_id == user_id, *_conditions(filters, user_id=user_id))
    if filters.name:
        query = _name_filter(query, user_id=user_id, name=filters.name)
    return query


async def _count(session: AsyncSession, *, user_id: str, filters: TraceFilters) -> int:
    if filters.model_dump(exclude_none=True, exclude={"status"}) == {}:
        counted = select(func.coalesce(func.sum(TraceCount.count), 0)).where(TraceCount.user_id == user_id)
        if filters.status is not None:
            counted = counted.where(TraceCount.status == filters.status)
        return int((await session.execute(counted)).scalar_one())
    query = _filtered(select(func.count()).select_from(Trace), user_id=user_id, filters=filters)
    return int((await session.execute(query)).scalar_one())


async def list(
    db: Database, *, user_id: str, filters: TraceFilters, page: Page
) -> tuple[builtins.list[orjson.Fragment], int]:
    """A page of traces, newest first (each already JSON), and how many match."""
    rendered = _statements_for(db.dialect)["list_item"]
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
            query = _filtered(select(rendered), user_id=user_id, filters=filters)
            rows = builtins.list(
                (await session.execute(query.order_by(*order).limit(limit).offset(skip))).scalars()
            )
        else:
            # Skip through the covering index alone, then read only the rows shown.
            ids = _filtered(select(Trace.id), user_id=user_id, filters=filters)
            page_ids = (await session.execute(ids.order_by(*order).limit(limit).offset(skip))).scalars().all()
            found = await session.execute(
                select(Trace.id, rendered).where(Trace.user_id == user_id, Trace.id.in_(page_ids))
            )
            by_id = {row[0]: row[1] for row in found}
            rows = [by_id[trace_id] for trace_id in page_ids if trace_id in by_id]
    traces = [orjson.Fragment(row) for row in rows]
    return (traces[::-1] if from_far_end else traces), total
