"""Cascade replay: a fork re-run by the live agent that recorded its trace (the SDK's `resume`).

The server sends the agent a `resume` command; the SDK re-runs the registered function with
the fork's input and uploads the result as a new trace whose metadata names the fork and the
execution. That upload is linked to the fork in the same transaction that stores it, only if
its execution is still the fork's current one (a superseded replay's result is refused).

The SDK numbers only the spans its provider interceptors record (LLM calls and the tool
calls they capture) and, in a replay, suppresses those before the fork point; the spans the
app opens itself it records again. So the fork point index sent is that count, and the
server copies exactly the suppressed spans into the result trace.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from retrace_server.db.engine import Database
from retrace_server.db.types import utcnow
from retrace_server.errors import ApiError, not_found
from retrace_server.forks import service as forks
from retrace_server.forks.models import Fork
from retrace_server.forks.replay import RECORDED, copy_span, start_execution
from retrace_server.forks.schemas import Modifications
from retrace_server.stream.agents import agent_registry
from retrace_server.traces import service as traces
from retrace_server.traces.models import Trace
from retrace_server.traces.schemas import TraceCreate

ReplayMode = Literal["auto", "server", "agent"]
TraceStoredHook = Callable[[AsyncSession, str], Awaitable[None]]
_POLL_S = 0.2


def numbered_by_sdk(span: dict[str, Any]) -> bool:
    return span["span_type"] == "llm_call" or "tool_call_id" in (span.get("metadata") or {})


async def replay_through_agent(
    app: FastAPI,
    *,
    user_id: str,
    fork_id: str,
    overrides: Modifications | None,
    mode: ReplayMode,
    wait_s: float | None = None,
) -> tuple[bool, dict[str, Any]] | None:
    """Sends the fork to a connected agent: (finished within the wait, fork), or None to replay on the server.

    With `mode: agent` and no agent connected for the trace's name, answers 409.
    """
    db: Database = app.state.db
    registry = agent_registry(app)
    name = await _forked_trace_name(db, user_id=user_id, fork_id=fork_id)
    agent_id = await registry.find(user_id=user_id, trace_name=name) if name else None
    if agent_id is None:
        if mode == "agent":
            raise ApiError(
                409,
                f"No agent is connected for trace {name!r}: run it with "
                "`@retrace.record(..., resumable=True)` and RETRACE_ALLOW_REMOTE_REPLAY=true, "
                'or replay it on the server with {"mode": "server"}',
            )
        return None
    fork, original, fork_index, execution = await start_execution(
        db, user_id=user_id, fork_id=fork_id, overrides=overrides
    )
    suppressed = [s for s in original["spans"][:fork_index] if numbered_by_sdk(s)]
    await registry.send(agent_id, resume_frame(original, fork, execution, suppressed))
    finished = await _wait_for_execution(
        db,
        fork_id=fork_id,
        execution_id=execution.execution_id,
        timeout=app.state.settings.replay_wait_s if wait_s is None else wait_s,
    )
    return finished, await forks.get(db, user_id=user_id, fork_id=fork_id)


async def _forked_trace_name(db: Database, *, user_id: str, fork_id: str) -> str | None:
    async with db.read() as session:
        row = (
            await session.execute(
                select(Trace.name)
                .join(Fork, Fork.trace_id == Trace.id)
                .where(Fork.id == fork_id, Fork.user_id == user_id)
            )
        ).first()
    if row is None:
        raise not_found("Fork")
    return row.name


def resume_frame(
    original: dict[str, Any],
    fork: dict[str, Any],
    execution: forks.Execution,
    suppressed: list[dict[str, Any]],
) -> dict[str, Any]:
    """The `resume` command as `retrace.resume.parse_resume_message` reads it."""
    recorded_input = original.get("input")
    args = kwargs = None
    if isinstance(recorded_input, dict) and set(recorded_input) <= {"args", "kwargs"}:
        args, kwargs = recorded_input.get("args"), recorded_input.get("kwargs")
    return {
        "type": "resume",
        "data": {
            "forkId": fork["id"],
            "traceId": original["id"],
            "traceName": original["name"],
            "forkPointSpanId": fork["fork_point_span_id"],
            "forkPointIndex": len(suppressed),
            "modifiedInput": execution.modified_input,
            "originalArgs": args,
            "originalKwargs": kwargs,
            "executionId": execution.execution_id,
            # Recorded outputs of the steps the replay does not re-run; the SDK uses them only
            # when the agent allows remote cassettes.
            "cassette": [_cassette_entry(s) for s in suppressed],
        },
    }


def _cassette_entry(span: dict[str, Any]) -> dict[str, Any]:
    return {
        "span_id": span["id"],
        "name": span["name"],
        "span_type": span["span_type"],
        "model": span.get("model"),
        "input": span.get("input"),
        "output": span.get("output"),
        "input_tokens": span.get("input_tokens"),
        "output_tokens": span.get("output_tokens"),
        "error": span.get("error"),
    }


async def _wait_for_execution(db: Database, *, fork_id: str, execution_id: str, timeout: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        async with db.read() as session:
            row = (
                await session.execute(select(Fork.status, Fork.execution_id).where(Fork.id == fork_id))
            ).one()
        if row.execution_id != execution_id or row.status != "running":
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(_POLL_S)


def agent_result_hook(payload: TraceCreate, *, user_id: str) -> TraceStoredHook | None:
    """For a trace the SDK uploads at the end of a cascade replay: links it to its fork when stored."""
    metadata = payload.metadata or {}
    fork_id, execution_id = metadata.get("_fork_id"), metadata.get("_fork_execution_id")
    if not (metadata.get("_cascade_replay") and isinstance(fork_id, str) and isinstance(execution_id, str)):
        return None

    async def link(session: AsyncSession, trace_id: str) -> None:
        await adopt_agent_result(
            session,
            user_id=user_id,
            fork_id=fork_id,
            execution_id=execution_id,
            trace_id=trace_id,
            status="failed" if payload.status == "failed" else "completed",
            error=payload.error,
        )

    return link


async def adopt_agent_result(
    session: AsyncSession,
    *,
    user_id: str,
    fork_id: str,
    execution_id: str,
    trace_id: str,
    status: str,
    error: str | None,
) -> None:
    """Makes a stored trace the result of the fork's execution; 409 when a newer replay superseded it."""
    query = select(Fork).where(Fork.id == fork_id, Fork.user_id == user_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    fork = (await session.execute(query)).scalar_one_or_none()
    if fork is None:
        return  # not one of this user's forks: an ordinary trace
    if fork.execution_id != execution_id or fork.status != "running":
        raise ApiError(
            409,
            f"Execution {execution_id!r} of fork {fork_id!r} is no longer current (the fork is "
            f"{fork.status}, its execution {fork.execution_id!r}); this replay result is not stored",
        )
    spans = await traces.spans_in_order(session, trace_id=fork.trace_id)
    fork_index = next((i for i, s in enumerate(spans) if s["id"] == fork.fork_point_span_id), len(spans))
    id_map = {s["id"]: str(uuid.uuid4()) for s in spans}
    copies = [copy_span(s, id_map, mode=RECORDED) for s in spans[:fork_index] if numbered_by_sdk(s)]
    now = utcnow()
    await traces.upsert_spans(session, traces.span_rows(copies, trace_id=trace_id, user_id=user_id, now=now))
    trace = (await session.execute(select(Trace).where(Trace.id == trace_id))).scalar_one()
    trace.metadata_ = {
        **(trace.metadata_ or {}),
        "fork_of": fork.trace_id,
        "fork_id": fork_id,
        "fork_point_span_id": fork.fork_point_span_id,
        "execution_id": execution_id,
    }
    await session.flush()
    await traces.refresh_totals(
        session,
        trace_id=trace_id,
        started_at=trace.started_at,
        ended_at=trace.ended_at,
        last_activity_at=trace.last_activity_at,
        client_totals={},
    )
    await forks.set_result_trace(session, fork_id=fork_id, execution_id=execution_id, trace_id=trace_id)
    await forks.finish_execution(
        session, fork_id=fork_id, execution_id=execution_id, status=status, error=error
    )
