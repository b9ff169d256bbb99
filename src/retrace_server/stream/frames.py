"""Frames of `/ws/v1/stream`, as the official SDK sends and expects them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from retrace_server.db import faults
from retrace_server.errors import describe_validation_errors
from retrace_server.traces.schemas import (
    Count,
    Identifier,
    Money,
    Reference,
    SpanIn,
    Tokens,
    TraceCreate,
    TraceUpdate,
    UtcTimestamp,
)

IngestType = Literal["trace_started", "span_started", "span_ended", "trace_ended"]
INGEST_TYPES: frozenset[str] = frozenset({"trace_started", "span_started", "span_ended", "trace_ended"})


class AuthFrame(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["auth"]
    api_key: Annotated[str, Field(min_length=1, max_length=256)]
    acks: bool = True
    resumable: bool = False
    replay_generation: int = 1


class IngestFrame(BaseModel):
    """The envelope; `data` is validated by the model of its type."""

    model_config = ConfigDict(extra="ignore")

    type: IngestType
    seq: int | None = None
    data: dict[str, Any]


class TraceStarted(TraceCreate):
    id: Identifier


class SpanStarted(SpanIn):
    id: Identifier
    trace_id: Reference


class SpanEnded(BaseModel):
    """Only the end of a span: absent fields leave what its start stored; unknown ones go to metadata."""

    model_config = ConfigDict(extra="allow")

    id: Identifier
    trace_id: Reference | None = None
    output: Any = None
    ended_at: UtcTimestamp | None = None
    duration_ms: Count | None = None
    input_tokens: Tokens | None = None
    output_tokens: Tokens | None = None
    cost: Money | None = None
    error: str | None = None
    metadata: dict[str, Any] | None = None

    def extras(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TraceEnded(TraceUpdate):
    id: Identifier


DATA_MODELS: dict[str, type[BaseModel]] = {
    "trace_started": TraceStarted,
    "span_started": SpanStarted,
    "span_ended": SpanEnded,
    "trace_ended": TraceEnded,
}


class FrameError(Exception):
    """A frame that cannot be stored as sent; answered with an error frame naming its `seq`."""

    def __init__(self, message: str, *, seq: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.seq = seq


@dataclass
class Frame:
    kind: str
    seq: int | None
    data: TraceStarted | SpanStarted | SpanEnded | TraceEnded

    @property
    def trace_id(self) -> str | None:
        if isinstance(self.data, TraceStarted | TraceEnded):
            return self.data.id
        return self.data.trace_id

    @property
    def data_id(self) -> str:
        return self.data.id


def parse_frame(message: dict[str, Any]) -> Frame:
    seq = message.get("seq")
    seq = seq if isinstance(seq, int) and not isinstance(seq, bool) else None
    kind = message.get("type")
    try:
        envelope = IngestFrame.model_validate(message)
    except ValidationError as exc:
        raise FrameError(f"Invalid {kind or 'frame'} frame: {_describe(exc)}", seq=seq) from None
    try:
        data = DATA_MODELS[envelope.type].model_validate(envelope.data)
    except ValidationError as exc:
        raise FrameError(f"Invalid {kind} frame: data.{_describe(exc)}", seq=seq) from None
    assert isinstance(data, TraceStarted | SpanStarted | SpanEnded | TraceEnded)
    if isinstance(data, TraceStarted | TraceEnded):
        for index, span in enumerate(data.spans):
            if span.trace_id is not None and span.trace_id != data.id:
                raise FrameError(
                    f"Invalid {envelope.type} frame: data.spans[{index}].trace_id is not the trace id",
                    seq=seq,
                )
    return Frame(kind=envelope.type, seq=envelope.seq, data=data)


def _describe(exc: ValidationError) -> str:
    return describe_validation_errors(exc.errors(), skip_prefix=())


def ack(seq: int | None, data_id: str | None) -> dict[str, Any]:
    return {"type": "ack", "seq": seq, "id": data_id}


def error(message: str, *, seq: int | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "error": message}
    if seq is not None:
        frame["seq"] = seq
    return frame


FAULT_CLOSE_CODE = 1013
"""`Try Again Later`: closing a stream with it after a fault frame makes the official SDK reconnect,
and on reconnecting it re-sends every frame the server has not acknowledged."""
# The official SDK (`retrace.errors.classify_server_signal`) treats an error frame as retryable only
# when its text holds "Rate limit" (and not "limit reached", which means credits are exhausted).
_RETRYABLE_PREFIX = "Rate limit: the server cannot store frames for now"


def fault_error_frame(exc: BaseException, *, seq: int | None = None) -> dict[str, Any] | None:
    """The error frame for a database fault (unavailable, disk full), one the official SDK reports
    as retryable (`rate_limited`); None when `exc` is no such fault. The fault is logged once per
    outage. Nothing was stored and no ack is sent, so the SDK keeps the frame to re-send."""
    fault = faults.surface(exc)
    if fault is None:
        return None
    frame = error(f"{_RETRYABLE_PREFIX}. {fault.message}", seq=seq)
    frame["code"] = "disk_full" if isinstance(fault, faults.DiskFull) else "database_unavailable"
    frame["retry_after"] = int(fault.headers["Retry-After"])
    return frame
