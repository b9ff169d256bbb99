"""The API's trace and span payloads (REST and the stream) as writes of the ingest module."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from retrace_server.errors import InvalidInput
from retrace_server.ingest import ALL_SPAN_FIELDS, SpanPart, TraceMode, TraceWrite
from retrace_server.traces.schemas import SpanIn, TraceCreate, TraceUpdate

_CLIENT_TOTALS = ("total_tokens", "total_cost", "total_duration_ms")


def new_id() -> str:
    return str(uuid.uuid4())


def with_extras(metadata: dict[str, Any] | None, extras: dict[str, Any] | None) -> dict[str, Any] | None:
    """Metadata with a payload's unknown fields added (`model_extra`); metadata wins a clash."""
    if not extras:
        return metadata
    merged = dict(extras)
    merged.update(metadata or {})
    return merged


def span_values(span: SpanIn) -> dict[str, Any]:
    return {
        "id": span.id or new_id(),
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
        "metadata": with_extras(span.metadata, span.model_extra),
        "agent_id": span.agent_id,
        "parent_agent_id": span.parent_agent_id,
        "agent_role": span.agent_role,
        "started_at": span.started_at,
        "ended_at": span.ended_at,
        "error": span.error,
    }


def span_parts(spans: Sequence[SpanIn], *, trace_id: str) -> list[SpanPart]:
    """Whole spans (each the authority on every field it carries); one naming another trace is refused."""
    parts = []
    for index, span in enumerate(spans):
        if span.trace_id is not None and span.trace_id != trace_id:
            raise InvalidInput(f"spans[{index}].trace_id: does not match the trace id {trace_id!r}")
        parts.append(SpanPart(span_values(span), ALL_SPAN_FIELDS))
    return parts


def create_write(payload: TraceCreate, *, mode: TraceMode = "create") -> TraceWrite:
    trace_id = payload.id or new_id()
    return TraceWrite(
        trace_id=trace_id,
        mode=mode,
        fields={
            "name": payload.name,
            "status": payload.status,
            "input": payload.input,
            "output": payload.output,
            "metadata": with_extras(payload.metadata, payload.model_extra),
            "session_id": payload.session_id,
            "project_id": payload.project_id,
            "error": payload.error,
            "lossy": payload.lossy,
            "started_at": payload.started_at,
            "ended_at": payload.ended_at,
        },
        client_totals={k: getattr(payload, k) for k in _CLIENT_TOTALS},
        spans=span_parts(payload.spans, trace_id=trace_id),
    )


def update_write(payload: TraceUpdate, *, trace_id: str, mode: TraceMode = "update") -> TraceWrite:
    """Only the fields the payload names change (an explicit null clears one); `lossy` only turns on."""
    given = payload.model_fields_set
    fields: dict[str, Any] = {
        key: getattr(payload, key)
        for key in ("name", "status", "output", "session_id", "project_id", "error", "ended_at", "started_at")
        if key in given
    }
    metadata = with_extras(payload.metadata, payload.model_extra)
    if metadata:
        fields["metadata"] = metadata
    if payload.lossy is not None:
        fields["lossy"] = payload.lossy
    return TraceWrite(
        trace_id=trace_id,
        mode=mode,
        fields=fields,
        client_totals={k: getattr(payload, k) for k in _CLIENT_TOTALS if getattr(payload, k) is not None},
        spans=span_parts(payload.spans, trace_id=trace_id),
    )
