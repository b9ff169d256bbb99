"""The one way traces and spans are written: REST, the stream, replays and OTLP all call it."""

from retrace_server.ingest.contract import (
    SPAN_END_FIELDS,
    SPAN_FIELDS,
    TRACE_FIELDS,
    SpanPart,
    TraceMode,
    TraceWrite,
    WriteOutcome,
)

__all__ = [
    "SPAN_END_FIELDS",
    "SPAN_FIELDS",
    "TRACE_FIELDS",
    "SpanPart",
    "TraceMode",
    "TraceWrite",
    "WriteOutcome",
]
