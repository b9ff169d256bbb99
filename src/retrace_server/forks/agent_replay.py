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
from typing import Any, Literal

from fastapi import FastAPI
from sqlalchemy import select

from retrace_server.db.engine import Database
from retrace_server.errors import ApiError
from retrace_server.forks import service as forks
from retrace_server.forks.hooks import numbered_by_sdk
from retrace_server.forks.models import Fork
from retrace_server.forks.replay import start_execution
from retrace_server.forks.schemas import Modifications
from retrace_server.stream.agents import agent_registry
from retrace_server.traces import service as traces

ReplayMode = Literal["auto", "server", "agent"]
_POLL_S = 0.2


async def replay_through_agent(
    app: FastAPI, *, user_id: str, fork_id: str, overrides: Modifications | None, mode: ReplayMode
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
        db, fork_id=fork_id, execution_id=execution.execution_id, timeout=app.state.settings.replay_wait_s
    )
    return finished, await forks.get(db, user_id=user_id, fork_id=fork_id)


async def _forked_trace_name(db: Database, *, user_id: str, fork_id: str) -> str | None:
    fork = await forks.get(db, user_id=user_id, fork_id=fork_id)
    trace = await traces.get(db, user_id=user_id, trace_id=fork["trace_id"], spans=False)
    name: str | None = trace["name"]
    return name


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
