"""Forks and their executions: create, read, and the steps of a replay's life.

A replay is one execution of a fork: `begin_execution` claims the fork (one execution at a time),
`create_result_trace` writes the trace that receives the replayed spans, `link_result_trace`
attaches it, `finish_execution` ends it. The server's own replay (`replay.execute`) and a live
agent replaying through the official SDK both go through these.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from retrace_server.db.engine import Database
from retrace_server.db.types import utcnow
from retrace_server.errors import ApiError, InvalidInput, not_found
from retrace_server.forks.diff import diff_traces
from retrace_server.forks.executions import finish_statements, heartbeat_statements, result_trace_statements
from retrace_server.forks.models import Fork, ForkRun
from retrace_server.forks.schemas import ForkCreate, Modifications
from retrace_server.ingest import Ingestor, SpanPart, TraceWrite
from retrace_server.ingest.errors import TraceNotFound
from retrace_server.pagination import Page
from retrace_server.providers.parameters import unknown_parameters
from retrace_server.traces import service as traces_service

# A running replay refreshes its heartbeat at every step and every HEARTBEAT_S while it waits on
# a provider; one silent for STALE_AFTER was left by a process that died.
HEARTBEAT_S = 15.0
STALE_AFTER = timedelta(seconds=90)

FORK_COLUMNS = (
    Fork.id,
    Fork.trace_id,
    Fork.fork_point_span_id,
    Fork.name,
    Fork.status,
    Fork.modified_input,
    Fork.model,
    Fork.parameters,
    Fork.result_trace_id,
    Fork.execution_id,
    Fork.error,
    Fork.created_at,
    Fork.updated_at,
)
RUN_COLUMNS = (
    ForkRun.execution_id,
    ForkRun.status,
    ForkRun.result_trace_id,
    ForkRun.modified_input,
    ForkRun.model,
    ForkRun.parameters,
    ForkRun.error,
    ForkRun.failed_step,
    ForkRun.claimed_at,
    ForkRun.started_at,
    ForkRun.ended_at,
)


@dataclass(frozen=True)
class Execution:
    """One claimed execution of a fork, with the changes it replays."""

    fork_id: str
    user_id: str
    execution_id: str
    trace_id: str
    fork_point_span_id: str
    name: str | None
    modified_input: Any
    has_modified_input: bool
    model: str | None
    parameters: dict[str, Any]


def _parameters(mods: Modifications) -> dict[str, Any]:
    """The fork's provider options; a name no provider protocol has is refused, not ignored."""
    if mods.parameters is None:
        return {}
    given = mods.parameters.as_dict()
    unknown = unknown_parameters(given)
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        raise InvalidInput(
            f"parameters: unknown parameter{'s' if len(unknown) > 1 else ''} {names}; a fork sets request "
            "options of the OpenAI Chat Completions or Anthropic Messages API (temperature, top_p, top_k, "
            "max_tokens, stop, seed, tools, tool_choice, response_format, ...)"
        )
    return given


async def create(db: Database, *, user_id: str, payload: ForkCreate) -> dict[str, Any]:
    now = utcnow()
    fork_id = str(uuid.uuid4())
    parameters = _parameters(payload)
    try:
        has_span = await traces_service.has_span(
            db, user_id=user_id, trace_id=payload.trace_id, span_id=payload.fork_point_span_id
        )
    except TraceNotFound:
        raise not_found("Trace") from None
    if not has_span:
        raise ApiError(404, f"Span {payload.fork_point_span_id!r} not found in trace {payload.trace_id!r}")
    async with db.write() as session:
        await session.execute(
            insert(Fork),
            {
                "id": fork_id,
                "user_id": user_id,
                "trace_id": payload.trace_id,
                "fork_point_span_id": payload.fork_point_span_id,
                "name": payload.name,
                "status": "created",
                "modified_input": payload.modified_input,
                "model": payload.model,
                "parameters": parameters,
                "created_at": now,
                "updated_at": now,
            },
        )
        fork = await _fork_dict(session, fork_id)
    fork["runs"] = []
    return fork


async def _fork_dict(session: AsyncSession, fork_id: str) -> dict[str, Any]:
    row = (await session.execute(select(*FORK_COLUMNS).where(Fork.id == fork_id))).one()
    return dict(row._mapping)


async def get(db: Database, *, user_id: str, fork_id: str) -> dict[str, Any]:
    """The fork with its replays, oldest first."""
    async with db.read() as session:
        row = (
            await session.execute(select(*FORK_COLUMNS).where(Fork.id == fork_id, Fork.user_id == user_id))
        ).first()
        if row is None:
            raise not_found("Fork")
        runs = await session.execute(
            select(*RUN_COLUMNS)
            .where(ForkRun.fork_id == fork_id)
            .order_by(ForkRun.started_at, ForkRun.execution_id)
        )
        fork = dict(row._mapping)
        fork["runs"] = [dict(r._mapping) for r in runs]
    return fork


async def get_diff(db: Database, *, user_id: str, fork_id: str) -> dict[str, Any]:
    """The original trace against the latest replay of the fork."""
    fork = await get(db, user_id=user_id, fork_id=fork_id)
    if fork["result_trace_id"] is None:
        raise ApiError(
            409, f"Fork {fork_id!r} has not been replayed yet: POST /api/v1/forks/{fork_id}/replay first"
        )
    original = await traces_service.get(db, user_id=user_id, trace_id=fork["trace_id"])
    try:
        replayed = await traces_service.get(db, user_id=user_id, trace_id=fork["result_trace_id"])
    except TraceNotFound:
        raise ApiError(
            409, f"The result trace of fork {fork_id!r} was deleted; replay the fork again"
        ) from None
    return {"fork_id": fork_id, **diff_traces(original, replayed)}


async def list_forks(
    db: Database, *, user_id: str, trace_id: str | None, page: Page
) -> tuple[list[dict[str, Any]], int]:
    condition = [Fork.user_id == user_id]
    if trace_id is not None:
        condition.append(Fork.trace_id == trace_id)
    async with db.read() as session:
        total = (await session.execute(select(func.count()).select_from(Fork).where(*condition))).scalar_one()
        rows = await session.execute(
            select(*FORK_COLUMNS)
            .where(*condition)
            .order_by(Fork.created_at.desc(), Fork.id.desc())
            .limit(page.limit)
            .offset(page.offset)
        )
        return [dict(r._mapping) for r in rows], total


async def begin_execution(
    db: Database, *, user_id: str, fork_id: str, overrides: Modifications | None = None
) -> Execution:
    """Moves the fork to `running` under a new execution id; 409 while another execution runs."""
    now = utcnow()
    execution_id = str(uuid.uuid4())
    given = overrides.model_fields_set if overrides is not None else set()
    override_parameters = _parameters(overrides) if overrides is not None and "parameters" in given else None
    async with db.write() as session:
        fork = (
            await session.execute(select(Fork).where(Fork.id == fork_id, Fork.user_id == user_id))
        ).scalar_one_or_none()
        if fork is None:
            raise not_found("Fork")
        has_input = "modified_input" in given or fork.modified_input is not None
        modified_input = (
            overrides.modified_input if overrides and "modified_input" in given else fork.modified_input
        )
        model = overrides.model if overrides and "model" in given else fork.model
        parameters = override_parameters if override_parameters is not None else dict(fork.parameters or {})
        # A conditional update, so that two requests (or processes) never both start an execution.
        claimed = await session.execute(
            update(Fork)
            .where(
                Fork.id == fork_id,
                or_(
                    Fork.status != "running",
                    Fork.heartbeat_at.is_(None),
                    Fork.heartbeat_at < now - STALE_AFTER,
                ),
            )
            .values(status="running", execution_id=execution_id, error=None, heartbeat_at=now, updated_at=now)
        )
        if claimed.rowcount == 0:  # type: ignore[attr-defined]
            raise ApiError(409, f"Fork {fork_id!r} is already replaying; wait until it completes or fails")
        await session.execute(
            update(ForkRun)
            .where(ForkRun.fork_id == fork_id, ForkRun.status == "running")
            .values(status="failed", error="superseded: the replay stopped answering", ended_at=now)
        )
        await session.execute(
            insert(ForkRun),
            {
                "execution_id": execution_id,
                "fork_id": fork_id,
                "status": "running",
                "modified_input": modified_input,
                "model": model,
                "parameters": parameters,
                "started_at": now,
            },
        )
        return Execution(
            fork_id=fork_id,
            user_id=user_id,
            execution_id=execution_id,
            trace_id=fork.trace_id,
            fork_point_span_id=fork.fork_point_span_id,
            name=fork.name,
            modified_input=modified_input,
            has_modified_input=has_input,
            model=model,
            parameters=parameters,
        )


async def create_result_trace(
    ingestor: Ingestor,
    *,
    execution: Execution,
    original: dict[str, Any],
    spans: list[SpanPart],
    started_at: datetime,
) -> str:
    """A new running trace of the caller that names what it is a fork of, holding `spans`."""
    label = execution.name or execution.fork_id[:8]
    write = TraceWrite(
        trace_id=str(uuid.uuid4()),
        mode="create",
        fields={
            "name": f"{original.get('name') or 'trace'} (fork {label})"[:512],
            "status": "running",
            "input": original.get("input"),
            "project_id": original.get("project_id"),
            "metadata": {
                "fork_of": execution.trace_id,
                "fork_id": execution.fork_id,
                "fork_point_span_id": execution.fork_point_span_id,
                "execution_id": execution.execution_id,
            },
            "started_at": started_at,
        },
        spans=spans,
    )
    trace = await traces_service.write(ingestor, user_id=execution.user_id, write=write)
    return str(trace["id"])


async def link_result_trace(db: Database, *, fork_id: str, execution_id: str, trace_id: str) -> None:
    async with db.write() as session:
        await set_result_trace(session, fork_id=fork_id, execution_id=execution_id, trace_id=trace_id)


async def set_result_trace(session: AsyncSession, *, fork_id: str, execution_id: str, trace_id: str) -> None:
    """Links the execution's result trace (inside the caller's write session)."""
    for statement in result_trace_statements(fork_id=fork_id, execution_id=execution_id, trace_id=trace_id):
        await session.execute(statement)


async def finish_execution(
    session: AsyncSession,
    *,
    fork_id: str,
    execution_id: str,
    status: str,
    error: str | None = None,
    failed_step: dict[str, Any] | None = None,
) -> None:
    """Ends the execution (inside the caller's write session)."""
    for statement in finish_statements(
        fork_id=fork_id, execution_id=execution_id, status=status, error=error, failed_step=failed_step
    ):
        await session.execute(statement)


async def claim(db: Database, *, user_id: str, fork_id: str, execution_id: str) -> dict[str, Any]:
    """A live agent takes on an execution: 200 for the current one, 409 for any other."""
    async with db.write() as session:
        fork = (
            await session.execute(
                select(Fork.execution_id).where(Fork.id == fork_id, Fork.user_id == user_id)
            )
        ).first()
        if fork is None:
            raise not_found("Fork")
        if fork.execution_id != execution_id:
            known = (
                await session.execute(
                    select(ForkRun.execution_id).where(
                        ForkRun.fork_id == fork_id, ForkRun.execution_id == execution_id
                    )
                )
            ).first()
            reason = "has been superseded by a newer replay" if known else "is not an execution of this fork"
            raise ApiError(
                409, f"Execution {execution_id!r} {reason}; the current one is {fork.execution_id!r}"
            )
        now = utcnow()
        await session.execute(
            update(ForkRun)
            .where(ForkRun.execution_id == execution_id, ForkRun.claimed_at.is_(None))
            .values(claimed_at=now)
        )
        await session.execute(update(Fork).where(Fork.id == fork_id).values(heartbeat_at=now))
    return await get(db, user_id=user_id, fork_id=fork_id)


async def keep_replays_alive(session: AsyncSession, replaying: dict[str, str]) -> dict[str, str]:
    """Of the executions a connected agent is replaying (by fork id), those still current and
    running, with their heartbeats refreshed."""
    running = (
        await session.execute(
            select(Fork.id).where(
                Fork.id.in_(list(replaying)),
                Fork.execution_id.in_(list(replaying.values())),
                Fork.status == "running",
            )
        )
    ).scalars()
    alive = {fork_id: replaying[fork_id] for fork_id in running}
    await heartbeat(session, sorted(alive))
    return alive


async def heartbeat(session: AsyncSession, fork_ids: list[str]) -> None:
    for statement in heartbeat_statements(fork_ids):
        await session.execute(statement)


async def fail_stale(db: Database, ingestor: Ingestor, *, fork_id: str | None = None) -> int:
    """Marks failed the executions whose process stopped sending heartbeats (it died), and their
    result traces."""
    now = utcnow()
    condition = [
        Fork.status == "running",
        or_(Fork.heartbeat_at.is_(None), Fork.heartbeat_at < now - STALE_AFTER),
    ]
    if fork_id is not None:
        condition.append(Fork.id == fork_id)
    message = "the server stopped during the replay"
    async with db.write() as session:
        stale = (
            await session.execute(
                select(Fork.id, Fork.user_id, Fork.execution_id, Fork.result_trace_id).where(*condition)
            )
        ).all()
        for row in stale:
            await session.execute(
                update(ForkRun)
                .where(ForkRun.execution_id == row.execution_id, ForkRun.status == "running")
                .values(status="failed", error=message, ended_at=now)
            )
            await session.execute(
                update(Fork)
                .where(Fork.id == row.id, Fork.status == "running")
                .values(status="failed", error=message, updated_at=now)
            )
    for row in stale:
        if row.result_trace_id is not None:
            ending = TraceWrite(
                trace_id=row.result_trace_id,
                mode="update",
                fields={"status": "failed", "error": message, "ended_at": now},
            )
            await ingestor.write(user_id=row.user_id, writes=[ending])
    return len(stale)
