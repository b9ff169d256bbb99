"""The one way traces and spans are written: REST, the stream, replays and OTLP all call it.

    outcomes = await ingestor.write(user_id=..., writes=[TraceWrite(...), ...])

`Ingestor` lives on `app.state.ingest` (`IngestDep` in routes); see `contract` for what a
write says and `merge` for the rules that apply it.
"""

from retrace_server.ingest.contract import (
    ALL_SPAN_FIELDS,
    SPAN_END_FIELDS,
    SPAN_FIELDS,
    TRACE_FIELDS,
    SpanPart,
    TraceMode,
    TraceWrite,
    WriteOutcome,
)
from retrace_server.ingest.rows import ID_RULE, check_id, encode_span, id_problem
from retrace_server.ingest.service import AdmissionHook, CommittedHook, Ingestor, api_trace
from retrace_server.ingest.store import StoredHook, StoredTrace

__all__ = [
    "ALL_SPAN_FIELDS",
    "ID_RULE",
    "SPAN_END_FIELDS",
    "SPAN_FIELDS",
    "TRACE_FIELDS",
    "AdmissionHook",
    "CommittedHook",
    "Ingestor",
    "SpanPart",
    "StoredHook",
    "StoredTrace",
    "TraceMode",
    "TraceWrite",
    "WriteOutcome",
    "api_trace",
    "check_id",
    "encode_span",
    "id_problem",
]
