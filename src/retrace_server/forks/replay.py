"""The server's replay of a fork: recorded steps copied, LLM calls re-executed, tools replayed.

Steps before the fork point are copied as `recorded`. The fork point is re-executed with the
changes (or, at a tool span, takes `modified_input` as its new output). Every later `llm_call`
is re-executed with its input rebuilt so the conversation carries the new outputs; every other
later span (tools above all) replays its recorded result. No database session is held while a
provider answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from retrace_server.config import Settings
from retrace_server.db.engine import Database
from retrace_server.db.types import utcnow
from retrace_server.errors import ApiError
from retrace_server.forks import service
from retrace_server.forks.hooks import EXECUTION
from retrace_server.forks.plan import ForkChanges, ReplayPlan, StepError
from retrace_server.forks.runner import ReplayRunner
from retrace_server.ingest import ALL_SPAN_FIELDS, Ingestor, SpanPart, TraceWrite
from retrace_server.pricing import PriceTable, price_table
from retrace_server.providers.base import ProviderConfigError, ProviderError
from retrace_server.providers.registry import ProviderPool
from retrace_server.traces import service as traces_service

log = logging.getLogger("retrace_server.forks")

RECORDED = "recorded"  # copied from before the fork point
EXECUTED = "executed"  # re-executed against the provider
REPLAYED = "replayed"  # after the fork point, the recorded result replayed (the server runs no tools)
MODIFIED = "modified"  # a non-LLM fork point whose output `modified_input` gave
# New steps are written in batches at most this far apart (every step when providers are slow):
# a write costs a few milliseconds, more than all the other work of replaying a step.
FLUSH_INTERVAL_S = 1.0


class StepFailed(Exception):
    def __init__(self, message: str, *, index: int, span: dict[str, Any]) -> None:
        super().__init__(message)
        self.step = {
            "index": index,
            "span_id": span["id"],
            "name": span["name"],
            "span_type": span["span_type"],
        }


@dataclass
class ReplayJob:
    """Everything one replay needs once its execution is claimed and its result trace exists."""

    execution: service.Execution
    result_trace_id: str
    started_at: datetime
    spans: list[dict[str, Any]]
    fork_index: int
    id_map: dict[str, str]
    original_output: Any
    first_llm_index: int | None
    pending: list[SpanPart] = field(default_factory=list)
    flushed_at: float = field(default_factory=time.monotonic)


class ForkStart(NamedTuple):
    fork: dict[str, Any]
    original: dict[str, Any]  # the forked trace, with its spans
    fork_index: int
    execution: service.Execution


async def start_execution(db: Database, *, user_id: str, fork_id: str, overrides: Any = None) -> ForkStart:
    """Finds the fork point in the forked trace (409 when it is gone), then claims a new execution."""
    fork = await service.get(db, user_id=user_id, fork_id=fork_id)
    original = await traces_service.get(db, user_id=user_id, trace_id=fork["trace_id"])
    spans: list[dict[str, Any]] = original["spans"]
    fork_index = next((i for i, s in enumerate(spans) if s["id"] == fork["fork_point_span_id"]), None)
    if fork_index is None:
        raise ApiError(409, f"The fork point span {fork['fork_point_span_id']!r} is no longer in the trace")
    execution = await service.begin_execution(db, user_id=user_id, fork_id=fork_id, overrides=overrides)
    return ForkStart(fork=fork, original=original, fork_index=fork_index, execution=execution)


async def prepare(ingestor: Ingestor, *, user_id: str, fork_id: str, overrides: Any = None) -> ReplayJob:
    """Claims a new execution of the fork and writes its result trace with the recorded steps."""
    db = ingestor.db
    _, original, fork_index, execution = await start_execution(
        db, user_id=user_id, fork_id=fork_id, overrides=overrides
    )
    spans: list[dict[str, Any]] = original["spans"]
    started_at = utcnow()
    id_map = {s["id"]: str(uuid.uuid4()) for s in spans}
    recorded = [copy_span(s, id_map, mode=RECORDED) for s in spans[:fork_index]]
    try:
        trace_id = await service.create_result_trace(
            ingestor, execution=execution, original=original, spans=recorded, started_at=started_at
        )
        await service.link_result_trace(
            db, fork_id=fork_id, execution_id=execution.execution_id, trace_id=trace_id
        )
    except BaseException:
        async with db.write() as session:
            await service.finish_execution(
                session,
                fork_id=fork_id,
                execution_id=execution.execution_id,
                status="failed",
                error="could not create the result trace",
            )
        raise
    return ReplayJob(
        execution=execution,
        result_trace_id=trace_id,
        started_at=started_at,
        spans=spans,
        fork_index=fork_index,
        id_map=id_map,
        original_output=original.get("output"),
        first_llm_index=next(
            (i for i in range(fork_index, len(spans)) if spans[i]["span_type"] == "llm_call"), None
        ),
    )


async def run(
    ingestor: Ingestor,
    settings: Settings,
    runner: ReplayRunner,
    *,
    user_id: str,
    fork_id: str,
    overrides: Any = None,
) -> tuple[bool, dict[str, Any]]:
    """Starts a replay in the background and waits up to RETRACE_REPLAY_WAIT_S: (finished, fork)."""
    job = await prepare(ingestor, user_id=user_id, fork_id=fork_id, overrides=overrides)
    task = runner.start(fork_id, execute(ingestor, settings, job))
    # asyncio.wait never cancels the task: a replay outlives a request that gives up waiting.
    done, _ = await asyncio.wait({task}, timeout=settings.replay_wait_s)
    return bool(done), await service.get(ingestor.db, user_id=user_id, fork_id=fork_id)


_COPIED = (
    "span_type", "name", "model", "input", "output", "input_tokens", "output_tokens", "cost", "duration_ms",
    "agent_id", "parent_agent_id", "agent_role", "started_at", "ended_at", "error",
)  # fmt: skip


def copy_span(span: dict[str, Any], id_map: dict[str, str], *, mode: str, **changes: Any) -> SpanPart:
    """A span of the forked trace as a step of the replay, under its new id, marked with its mode.

    A copied cost is the original's whatever its source; a new one (`changes`) is reported."""
    metadata = {**(span.get("metadata") or {}), "replay": mode, "original_span_id": span["id"]}
    values = {key: span.get(key) for key in _COPIED}
    parent = span.get("parent_id")
    values.update(
        id=id_map[span["id"]], parent_id=id_map.get(parent, parent) if parent else None, metadata=metadata
    )
    values.update(changes)
    return SpanPart(values, ALL_SPAN_FIELDS)


async def execute(ingestor: Ingestor, settings: Settings, job: ReplayJob) -> None:
    """Runs the replay to its end; the fork ends `completed` or `failed` whatever happens."""
    pool = ProviderPool(settings)
    prices = price_table(settings.model_prices)
    execution = job.execution
    plan = ReplayPlan(
        job.spans,
        fork_index=job.fork_index,
        changes=ForkChanges(
            modified_input=execution.modified_input,
            has_modified_input=execution.has_modified_input,
            model=execution.model,
            parameters=execution.parameters,
        ),
    )
    try:
        _check_providers(job, plan, pool)
        for index in range(job.fork_index, len(job.spans)):
            span = job.spans[index]
            at_fork = index == job.fork_index
            if span["span_type"] == "llm_call":
                job.pending.append(await _execute_llm(job, plan, pool, prices, index=index, span=span))
                if time.monotonic() - job.flushed_at >= FLUSH_INTERVAL_S:
                    await _flush(ingestor, job)
            elif at_fork and execution.has_modified_input:
                plan.tool_output_changed(index, execution.modified_input)
                job.pending.append(
                    copy_span(
                        span, job.id_map, mode=MODIFIED, output=execution.modified_input, **_now_times()
                    )
                )
            else:
                job.pending.append(_replay_recorded(job, plan, index=index, span=span))
        await _finish(ingestor, job, status="completed", output=plan.subs.apply(job.original_output))
    except StepFailed as exc:
        await _finish(
            ingestor,
            job,
            status="failed",
            error=f"step {exc.step['index']} ({exc.step['name'] or exc.step['span_type']}): {exc}",
            failed_step=exc.step,
        )
    except asyncio.CancelledError:
        await _finish(ingestor, job, status="failed", error="the server stopped during the replay")
        raise
    except Exception as exc:
        log.exception("replay of fork %s failed", execution.fork_id)
        await _finish(
            ingestor, job, status="failed", error=f"internal error during the replay: {type(exc).__name__}"
        )
    finally:
        await pool.close()


def _check_providers(job: ReplayJob, plan: ReplayPlan, pool: ProviderPool) -> None:
    """Fails before any call when a step cannot be rebuilt or its provider is unknown or unconfigured."""
    try:
        planned = plan.check()
    except StepError as exc:
        raise StepFailed(str(exc), index=exc.index, span=job.spans[exc.index]) from None
    for index, provider in planned:
        try:
            pool.check(provider)
        except ProviderConfigError as exc:
            raise StepFailed(str(exc), index=index, span=job.spans[index]) from None


def _replay_recorded(job: ReplayJob, plan: ReplayPlan, *, index: int, span: dict[str, Any]) -> SpanPart:
    """A later non-LLM step: its recorded result, standing for the call the new answer made."""
    try:
        fields, metadata = plan.replayed_span_changes(index)
    except StepError as exc:
        raise StepFailed(str(exc), index=index, span=span) from None
    replayed = copy_span(span, job.id_map, mode=REPLAYED, **fields, **_now_times())
    if metadata:
        replayed.values["metadata"] = {**replayed.values["metadata"], **metadata}
    return replayed


async def _execute_llm(
    job: ReplayJob,
    plan: ReplayPlan,
    pool: ProviderPool,
    prices: PriceTable,
    *,
    index: int,
    span: dict[str, Any],
) -> SpanPart:
    step = plan.steps[index]
    try:
        body = plan.request(index)
    except StepError as exc:
        raise StepFailed(str(exc), index=index, span=span) from None
    model = str(body["model"])
    span_input = {k: v for k, v in body.items() if k != "model"}
    started_at = utcnow()
    clock = time.perf_counter()
    try:
        result = await pool.get(step.provider).complete(body)
    except ProviderError as exc:
        failed = copy_span(
            span, job.id_map, mode=EXECUTED, input=span_input, model=model, output=None, input_tokens=None,
            output_tokens=None, cost=None, duration_ms=_elapsed_ms(clock), started_at=started_at,
            ended_at=utcnow(), error=str(exc),
        )  # fmt: skip
        job.pending.append(failed)
        raise StepFailed(str(exc), index=index, span=span) from None
    duration_ms = _elapsed_ms(clock)
    output = plan.answered(index, result)
    cost = prices.cost(
        result.model or model,
        input_tokens=result.input_tokens,
        output_tokens=result.output_tokens,
        cached_input_tokens=result.cached_input_tokens,
    )
    if cost is None and result.model != model:
        cost = prices.cost(model, input_tokens=result.input_tokens, output_tokens=result.output_tokens)
    options = plan.options_sent(body)
    metadata_changes = (
        {"provider": step.provider, "parameters": options} if options else {"provider": step.provider}
    )
    new_span = copy_span(
        span, job.id_map, mode=EXECUTED, input=span_input, model=model, output=output,
        input_tokens=result.input_tokens, output_tokens=result.output_tokens, cost=cost,
        duration_ms=duration_ms, started_at=started_at, ended_at=utcnow(), error=None,
    )  # fmt: skip
    new_span.values["metadata"] = {**new_span.values["metadata"], **metadata_changes}
    return new_span


def _elapsed_ms(clock: float) -> int:
    return round((time.perf_counter() - clock) * 1000)


def _now_times() -> dict[str, Any]:
    """A replayed step happens now and keeps its recorded duration."""
    now = utcnow()
    return {"started_at": now, "ended_at": now}


async def _flush(ingestor: Ingestor, job: ReplayJob) -> None:
    """Writes the steps done so far, so a running replay shows its progress (and is alive)."""
    await _write(ingestor, job, fields={}, execution={})
    job.flushed_at = time.monotonic()


async def _finish(
    ingestor: Ingestor,
    job: ReplayJob,
    *,
    status: str,
    output: Any = None,
    error: str | None = None,
    failed_step: dict[str, Any] | None = None,
) -> None:
    """The last steps, the result trace's end and the execution's end, in one transaction."""
    fields = {"status": status, "output": output, "error": error, "ended_at": utcnow()}
    await _write(
        ingestor, job, fields=fields, execution={"status": status, "error": error, "failed_step": failed_step}
    )


async def _write(
    ingestor: Ingestor, job: ReplayJob, *, fields: dict[str, Any], execution: dict[str, Any]
) -> None:
    spans, job.pending = job.pending, []
    context = {
        EXECUTION: {"fork_id": job.execution.fork_id, "execution_id": job.execution.execution_id, **execution}
    }
    write = TraceWrite(
        trace_id=job.result_trace_id, mode="update", fields=fields, spans=spans, context=context
    )
    await traces_service.write(ingestor, user_id=job.execution.user_id, write=write)
