"""Stores a connection's frames in the traces tables, a batch per transaction, idempotently.

A frame may arrive twice (the SDK re-sends what a dead socket never acknowledged) or, across
a reconnection, a span's end before its start: every write is an upsert that merges, so the
stored result does not depend on repeats or order.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from retrace_server.db.engine import Database
from retrace_server.db.types import utcnow
from retrace_server.stream.frames import Frame, SpanEnded, SpanStarted, TraceEnded, TraceStarted
from retrace_server.traces.models import Trace
from retrace_server.traces.schemas import SpanIn
from retrace_server.traces.service import (
    SPAN_END_FIELDS,
    apply_update,
    latest_activity,
    merge_span_row,
    refresh_totals,
    span_rows,
    stored_span_rows,
    trace_row,
    upsert_spans,
)

log = logging.getLogger("retrace_server.stream")

# Remembered per connection to route an old SDK's span_ended frames, which carry no trace id.
_SPAN_ROUTES_KEPT = 10_000

AdmitTrace = Callable[[], Awaitable[str | None]]
"""Asked before a new trace is stored: an error message refuses it (rate limits)."""


@dataclass
class Outcome:
    frame: Frame
    error: str | None = None

    @property
    def stored(self) -> bool:
        return self.error is None


@dataclass
class _TraceWork:
    trace_id: str
    frames: list[tuple[int, Frame]] = field(default_factory=list)


class StreamIngestor:
    """Ingests the frames of one authenticated connection."""

    def __init__(self, db: Database, *, user_id: str, admit_trace: AdmitTrace) -> None:
        self._db = db
        self._user_id = user_id
        self._admit_trace = admit_trace
        self._span_traces: dict[str, str] = {}

    def route(self, frame: Frame) -> None:
        """Fills in the trace of a span_ended frame that names none, from its span_started."""
        data = frame.data
        if isinstance(data, SpanStarted):
            if len(self._span_traces) >= _SPAN_ROUTES_KEPT:
                self._span_traces.pop(next(iter(self._span_traces)))
            self._span_traces[data.id] = data.trace_id
        elif isinstance(data, SpanEnded) and data.trace_id is None:
            data.trace_id = self._span_traces.get(data.id)

    async def ingest(self, frames: list[Frame]) -> list[Outcome]:
        """Stores the frames in one transaction; if that fails, one by one, so a bad frame loses no other."""
        for frame in frames:
            self.route(frame)
        try:
            async with self._db.write() as session:
                return await self._apply(session, frames)
        except Exception:
            if len(frames) == 1:
                log.exception("could not store a %s frame (user %s)", frames[0].kind, self._user_id)
                return [Outcome(frames[0], "Internal error: the frame was not stored; re-send it")]
        outcomes: list[Outcome] = []
        for frame in frames:
            outcomes.extend(await self.ingest([frame]))
        return outcomes

    async def _apply(self, session: AsyncSession, frames: list[Frame]) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(frames)
        work: dict[str, _TraceWork] = {}
        for index, frame in enumerate(frames):
            trace_id = frame.trace_id
            if trace_id is None:
                outcomes[index] = Outcome(
                    frame, "span_ended: `trace_id` is required (its span_started was not seen)"
                )
                continue
            work.setdefault(trace_id, _TraceWork(trace_id)).frames.append((index, frame))
        if self._db.dialect == "postgresql":
            # Frames of one trace can reach two processes at once (a client reconnecting while the
            # old socket drains): each trace's read-merge-write runs under its lock, in a fixed order.
            for trace_id in sorted(work):
                await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:id))"), {"id": trace_id})
        for item in work.values():
            for index, outcome in await self._apply_trace(session, item):
                outcomes[index] = outcome
        return [o for o in outcomes if o is not None]

    async def _apply_trace(self, session: AsyncSession, work: _TraceWork) -> list[tuple[int, Outcome]]:
        now = utcnow()
        trace = (await session.execute(select(Trace).where(Trace.id == work.trace_id))).scalar_one_or_none()
        refusal: str | None = None
        if trace is not None and trace.user_id != self._user_id:
            refusal = f"Trace {work.trace_id!r} not found"
            if any(f.kind == "trace_started" for _, f in work.frames):
                refusal = f"Trace {work.trace_id!r} already exists"
        elif trace is None:
            trace, refusal = await self._start(session, work, now=now)
        if refusal is not None or trace is None:
            message = refusal or "unknown trace"
            return [(index, Outcome(frame, message)) for index, frame in work.frames]

        span_ids = [sid for _, frame in work.frames for sid in _span_ids(frame)]
        stored = await stored_span_rows(session, trace_id=trace.id, span_ids=span_ids)
        touched: dict[str, dict[str, Any]] = {}
        ended: TraceEnded | None = None
        for _, frame in work.frames:
            for row, carried in self._span_parts(frame, trace_id=trace.id, now=now):
                previous = touched.get(row["id"]) or stored.get(row["id"])
                touched[row["id"]] = merge_span_row(previous, row, carried=carried)
            if isinstance(frame.data, TraceEnded):
                ended = frame.data
        if ended is not None:
            apply_update(trace, ended, now=now)
        await session.flush()
        rows = list(touched.values())
        await upsert_spans(session, rows)
        client_totals: dict[str, Any] = {"total_tokens": trace.total_tokens, "total_cost": trace.total_cost}
        if ended is not None:
            client_totals = ended.model_dump(include={"total_tokens", "total_cost", "total_duration_ms"})
        await refresh_totals(
            session,
            trace_id=trace.id,
            started_at=trace.started_at,
            ended_at=trace.ended_at,
            last_activity_at=latest_activity(rows, trace.last_activity_at),
            client_totals=client_totals,
        )
        return [(index, Outcome(frame)) for index, frame in work.frames]

    async def _start(
        self, session: AsyncSession, work: _TraceWork, *, now: datetime
    ) -> tuple[Trace | None, str | None]:
        """Creates the trace from its trace_started frame; a started trace counts once against limits."""
        started = next((f.data for _, f in work.frames if isinstance(f.data, TraceStarted)), None)
        if started is None:
            return None, f"Trace {work.trace_id!r} not found: send its trace_started frame first"
        refusal = await self._admit_trace()
        if refusal is not None:
            return None, refusal
        trace = Trace(
            **trace_row(started, trace_id=started.id, user_id=self._user_id, now=now, last_activity_at=None)
        )
        session.add(trace)
        await session.flush()
        return trace, None

    def _span_parts(
        self, frame: Frame, *, trace_id: str, now: datetime
    ) -> list[tuple[dict[str, Any], tuple[str, ...]]]:
        """The span rows a frame carries, each with the fields it is the authority for."""
        data = frame.data
        if isinstance(data, SpanEnded):
            return [(_end_row(data, trace_id=trace_id, user_id=self._user_id, now=now), SPAN_END_FIELDS)]
        spans: list[SpanIn] = []
        if isinstance(data, SpanStarted):
            spans = [data]
        elif isinstance(data, TraceStarted | TraceEnded):
            spans = list(data.spans)
        rows = span_rows(spans, trace_id=trace_id, user_id=self._user_id, now=now)
        return [(row, tuple(row)) for row in rows]


def _span_ids(frame: Frame) -> list[str]:
    data = frame.data
    if isinstance(data, SpanStarted | SpanEnded):
        return [data.id]
    if isinstance(data, TraceStarted | TraceEnded):
        return [s.id for s in data.spans if s.id]
    return []


def _end_row(end: SpanEnded, *, trace_id: str, user_id: str, now: datetime) -> dict[str, Any]:
    """A span_ended frame as a row; its start fields only stand in until the span_started arrives."""
    ended_at = end.ended_at or now
    started_at = ended_at - timedelta(milliseconds=end.duration_ms or 0)
    return {
        "id": end.id,
        "trace_id": trace_id,
        "user_id": user_id,
        "parent_id": None,
        "span_type": "llm_call",
        "name": "",
        "model": None,
        "input": None,
        "output": end.output,
        "input_tokens": end.input_tokens,
        "output_tokens": end.output_tokens,
        "cost": end.cost,
        "duration_ms": end.duration_ms,
        "metadata": {**(end.metadata or {}), **end.extras()},
        "agent_id": None,
        "parent_agent_id": None,
        "agent_role": None,
        "started_at": started_at,
        "ended_at": ended_at,
        "error": end.error,
    }
