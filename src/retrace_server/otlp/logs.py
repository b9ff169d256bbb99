"""GenAI log events as parts of the LLM spans they describe.

The GenAI instrumentations can send an LLM call's messages as log records rather than span
attributes: one event per message (`gen_ai.system.message`, `gen_ai.user.message`,
`gen_ai.assistant.message`, `gen_ai.tool.message`, `gen_ai.choice`), or one
`gen_ai.client.inference.operation.details` event holding them all. Each record names its span
by trace and span id. Its content is written as a part of that span that only fills what the span
lacks, so it does not matter whether the span or its events arrive first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from retrace_server.ingest import SpanPart, TraceWrite
from retrace_server.otlp import messages as msg
from retrace_server.otlp.spans import InvalidSpan, hex_id, provider_name, timestamp
from retrace_server.otlp.traces import MappedExport
from retrace_server.otlp.values import any_value, attributes, parse_json

OPERATION_DETAILS = "gen_ai.client.inference.operation.details"
GENAI_EVENTS = frozenset({*msg.EVENT_ROLES, "gen_ai.choice", OPERATION_DETAILS})
# A fill-only part: the span's own values (when it is stored) always win.
FILL_ONLY: frozenset[str] = frozenset()


@dataclass
class _SpanEvents:
    trace_id: str
    span_id: str
    first_seen: int
    records: list[tuple[str, LogRecord]] = field(default_factory=list)


def map_logs(request: ExportLogsServiceRequest) -> MappedExport:
    mapped = MappedExport()
    by_span: dict[tuple[str, str], _SpanEvents] = {}
    for r, resource_logs in enumerate(request.resource_logs):
        for s, scope_logs in enumerate(resource_logs.scope_logs):
            for i, record in enumerate(scope_logs.log_records):
                where = f"resourceLogs[{r}].scopeLogs[{s}].logRecords[{i}]"
                name = record.event_name or _event_name_attribute(record)
                if name not in GENAI_EVENTS:
                    mapped.reject(
                        1, f"{where}: only GenAI events ({', '.join(sorted(GENAI_EVENTS))}) are stored"
                    )
                    continue
                try:
                    trace_id = hex_id(record.trace_id, 16, "traceId")
                    span_id = hex_id(record.span_id, 8, "spanId")
                except InvalidSpan as exc:
                    mapped.reject(1, f"{where}: {exc} (a GenAI event must name its span)")
                    continue
                key = (trace_id, span_id)
                events = by_span.get(key)
                if events is None:
                    events = by_span[key] = _SpanEvents(trace_id, span_id, record.time_unix_nano)
                events.records.append((name, record))
    positions: dict[str, int] = {}
    for events in by_span.values():
        position = positions.get(events.trace_id)
        if position is None:
            position = positions[events.trace_id] = len(mapped.writes)
            mapped.writes.append(TraceWrite(trace_id=events.trace_id, defaults={"status": "running"}))
            mapped.span_counts.append(0)
        write = mapped.writes[position]
        if events.first_seen:
            started = timestamp(events.first_seen)
            if write.defaults.get("started_at") is None or started < write.defaults["started_at"]:
                write.defaults["started_at"] = started
        write.spans.append(SpanPart(values=_span_values(events), authority=FILL_ONLY))
        mapped.span_counts[position] += len(events.records)
    return mapped


def _event_name_attribute(record: LogRecord) -> str:
    for kv in record.attributes:
        if kv.key == "event.name":
            return str(any_value(kv.value) or "")
    return ""


def _span_values(events: _SpanEvents) -> dict[str, Any]:
    inputs: list[msg.Message] = []
    choices: list[msg.Message] = []
    metadata: dict[str, Any] = {}
    output: Any = None
    for name, record in events.records:
        details = attributes(record.attributes)
        details.pop("event.name", None)
        provider = provider_name(details.get("gen_ai.provider.name") or details.get("gen_ai.system"))
        if provider:
            metadata["provider"] = provider
        if name == OPERATION_DETAILS:
            inputs = msg.genai_messages(details.get("gen_ai.input.messages"))
            system = details.get("gen_ai.system_instructions")
            system_message = msg.genai_system(system) if system is not None else None
            if system_message and not any(m.get("role") == "system" for m in inputs):
                inputs.insert(0, system_message)
            output = msg.assistant_output(msg.genai_messages(details.get("gen_ai.output.messages")))
            tools = [t for t in map(msg.tool_definition, _list(details.get("gen_ai.tool.definitions"))) if t]
            if tools:
                metadata["tool_schemas"] = {t["function"]["name"]: t["function"]["parameters"] for t in tools}
            continue
        body = any_value(record.body) if record.HasField("body") else details
        if name == "gen_ai.choice":
            choices.append(msg.choice_message(body))
        else:
            inputs.append(msg.event_message(name, body))
    values: dict[str, Any] = {"id": events.span_id}
    if inputs:
        values["input"] = {"messages": inputs}
    if choices:
        output = msg.assistant_output(choices)
    if output is not None:
        values["output"] = output
    if events.first_seen:
        values["started_at"] = timestamp(events.first_seen)
    # Metadata merges key by key, so these keys must not be ones the span itself sets.
    values["metadata"] = {**metadata, "otel_log_events": [name for name, _ in events.records]}
    return values


def _list(value: Any) -> list[Any]:
    value = parse_json(value)
    return value if isinstance(value, list) else []
