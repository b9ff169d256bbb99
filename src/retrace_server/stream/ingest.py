"""A connection's frames as writes of the ingest module: one write per trace of a batch.

A frame may arrive twice (the SDK re-sends what a dead socket never acknowledged) or, across a
reconnection, a span's end before its start: every part merges into what is stored (see
`ingest.merge`), so the result does not depend on repeats or order.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from retrace_server.db.types import utcnow
from retrace_server.errors import DomainError
from retrace_server.ingest import (
    ALL_SPAN_FIELDS,
    SPAN_END_FIELDS,
    Ingestor,
    SpanPart,
    TraceWrite,
    encode_span,
)
from retrace_server.ingest.errors import TraceNotFound
from retrace_server.stream.frames import Frame, SpanEnded, SpanStarted, TraceEnded, TraceStarted
from retrace_server.traces import service as traces
from retrace_server.traces.writes import create_write, span_parts, span_values, update_write, with_extras

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
class _TraceFrames:
    trace_id: str
    frames: list[Frame] = field(default_factory=list)

    @property
    def started(self) -> TraceStarted | None:
        return next((f.data for f in self.frames if isinstance(f.data, TraceStarted)), None)


class StreamIngestor:
    """Ingests the frames of one authenticated connection."""

    def __init__(self, ingestor: Ingestor, *, user_id: str, admit_trace: AdmitTrace) -> None:
        self._ingestor = ingestor
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
        """Stores the frames, one write per trace; a refused trace loses no other trace's frames."""
        refusals: dict[int, str] = {}
        by_trace: dict[str, _TraceFrames] = {}
        for index, frame in enumerate(frames):
            self.route(frame)
            trace_id = frame.trace_id
            if trace_id is None:
                refusals[index] = "span_ended: `trace_id` is required (its span_started was not seen)"
                continue
            try:
                _check_spans(frame)
            except DomainError as exc:
                # Checked frame by frame, so that one bad frame fails alone.
                refusals[index] = f"Invalid {frame.kind} frame: {exc.message}"
                continue
            by_trace.setdefault(trace_id, _TraceFrames(trace_id)).frames.append(frame)

        trace_refusals = await self._admit_new_traces(by_trace)
        writes = []
        for trace_id, work in by_trace.items():
            if trace_id in trace_refusals:
                continue
            try:
                writes.append(self._write(work))
            except DomainError as exc:
                trace_refusals[trace_id] = exc.message
        try:
            stored = await self._ingestor.write(user_id=self._user_id, writes=writes)
        except Exception:
            log.exception("could not store %d stream frames (user %s)", len(frames), self._user_id)
            for write in writes:
                trace_refusals[write.trace_id] = "Internal error: the frame was not stored; re-send it"
            stored = []
        for outcome in stored:
            if outcome.error is not None:
                trace_refusals[outcome.trace_id] = _refusal(outcome.trace_id, outcome.error)

        outcomes = []
        for index, frame in enumerate(frames):
            message = refusals.get(index) or trace_refusals.get(frame.trace_id or "")
            outcomes.append(Outcome(frame, message))
        return outcomes

    async def _admit_new_traces(self, by_trace: dict[str, _TraceFrames]) -> dict[str, str]:
        """A started trace counts once against the write limit: only when it is new."""
        starting = [trace_id for trace_id, work in by_trace.items() if work.started is not None]
        known = await traces.existing(self._ingestor.db, user_id=self._user_id, trace_ids=starting)
        refusals = {}
        for trace_id in starting:
            if trace_id not in known and (refusal := await self._admit_trace()) is not None:
                refusals[trace_id] = refusal
        return refusals

    def _write(self, work: _TraceFrames) -> TraceWrite:
        started = work.started
        write = create_write(started, mode="upsert") if started is not None else None
        if write is None:
            write = TraceWrite(trace_id=work.trace_id, mode="update")
        else:
            # A re-sent trace_started must not undo what later frames stored: its fields only
            # fill what the trace lacks.
            write.defaults, write.fields = write.fields, {}
            write.client_totals, write.spans = {}, []
        for frame in work.frames:
            data = frame.data
            if isinstance(data, TraceStarted):
                write.spans.extend(span_parts(data.spans, trace_id=work.trace_id))
            elif isinstance(data, TraceEnded):
                ended = update_write(data, trace_id=work.trace_id)
                write.fields.update(ended.fields)
                write.client_totals.update(ended.client_totals)
                write.spans.extend(ended.spans)
            elif isinstance(data, SpanStarted):
                write.spans.append(SpanPart(span_values(data), ALL_SPAN_FIELDS))
            elif isinstance(data, SpanEnded):
                write.spans.append(SpanPart(_end_values(data), SPAN_END_FIELDS))
        return write


def _check_spans(frame: Frame) -> None:
    data = frame.data
    if isinstance(data, SpanStarted):
        encode_span(span_values(data), at="data")
    elif isinstance(data, SpanEnded):
        encode_span(_end_values(data), at="data")
    elif isinstance(data, TraceStarted | TraceEnded):
        for index, span in enumerate(data.spans):
            encode_span(span_values(span), at=f"data.spans[{index}]")


def _end_values(end: SpanEnded) -> dict[str, Any]:
    """What a span_ended frame says; the start fields stand in until its span_started arrives."""
    return {
        "id": end.id,
        "output": end.output,
        "ended_at": end.ended_at or utcnow(),
        "duration_ms": end.duration_ms,
        "input_tokens": end.input_tokens,
        "output_tokens": end.output_tokens,
        "cost": end.cost,
        "error": end.error,
        "metadata": with_extras(end.metadata, end.model_extra),
    }


def _refusal(trace_id: str, error: Exception) -> str:
    if isinstance(error, TraceNotFound):
        return f"Trace {trace_id!r} not found: send its trace_started frame first"
    return error.message if isinstance(error, DomainError) else str(error)
