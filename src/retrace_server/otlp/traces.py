"""An OTLP trace export as ingest writes: one upsert per OTel trace, whatever order spans come in.

A trace's spans arrive over many exports, children before parents and sometimes twice. Every
export therefore writes the same way: each span in full (the same span again writes the same
values), and the trace's own fields split in two. What only the root span knows (its end, its
status) and what a span states explicitly (`langfuse.trace.name`, sessions) are set; what is a
best guess until the root arrives (running, the earliest start seen, the root's name and input)
only fills what the stored trace lacks. Any arrival order ends in the same trace.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from retrace_server.ingest import SpanPart, TraceWrite
from retrace_server.otlp.spans import InvalidSpan, MappedSpan, map_span
from retrace_server.otlp.values import attributes

log = logging.getLogger("retrace_server.otlp")

MAX_REPORTED_PROBLEMS = 5


@dataclass
class MappedExport:
    """The writes of one export, and the spans refused before writing (with why)."""

    writes: list[TraceWrite] = field(default_factory=list)
    span_counts: list[int] = field(default_factory=list)
    rejected: int = 0
    problems: list[str] = field(default_factory=list)

    def reject(self, count: int, problem: str) -> None:
        self.rejected += count
        if len(self.problems) < MAX_REPORTED_PROBLEMS:
            self.problems.append(problem)

    def message(self) -> str:
        if not self.rejected:
            return ""
        more = self.rejected - len(self.problems)
        return "; ".join(self.problems) + (f" (and {more} more)" if more > 0 else "")


@dataclass
class _TraceBuild:
    spans: dict[str, MappedSpan] = field(default_factory=dict)
    resource: dict[str, Any] = field(default_factory=dict)


def map_export(request: ExportTraceServiceRequest) -> MappedExport:
    mapped = MappedExport()
    traces: dict[str, _TraceBuild] = {}
    for r, resource_spans in enumerate(request.resource_spans):
        resource = attributes(resource_spans.resource.attributes)
        for s, scope_spans in enumerate(resource_spans.scope_spans):
            scope = scope_spans.scope
            scope_name, scope_version = scope.name, scope.version
            for i, span in enumerate(scope_spans.spans):
                try:
                    one = map_span(span, scope_name=scope_name, scope_version=scope_version)
                except InvalidSpan as exc:
                    mapped.reject(1, f"{_where(r, s, i)}: {exc}")
                    continue
                except Exception:
                    # Input must never fail the export: the span is refused by position instead.
                    log.exception("could not map OTLP span %s", _where(r, s, i))
                    mapped.reject(1, f"{_where(r, s, i)}: the span could not be read")
                    continue
                build = traces.get(one.trace_id)
                if build is None:
                    build = traces[one.trace_id] = _TraceBuild()
                build.spans[one.values["id"]] = one
                if resource:
                    build.resource.update(resource)
    for trace_id, build in traces.items():
        mapped.writes.append(_trace_write(trace_id, build))
        mapped.span_counts.append(len(build.spans))
    return mapped


def _where(r: int, s: int, i: int) -> str:
    return f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]"


def _trace_write(trace_id: str, build: _TraceBuild) -> TraceWrite:
    fields: dict[str, Any] = {}
    metadata: dict[str, Any] = {**build.resource, "source": "otlp"}
    defaults: dict[str, Any] = {"status": "running"}
    earliest = None
    for span in build.spans.values():
        values = span.values
        facts = dict(span.trace_fields)
        metadata.update(facts.pop("metadata", {}))
        fields.update(facts)
        if earliest is None or values["started_at"] < earliest:
            earliest = values["started_at"]
        if span.is_root:
            _root_fields(values, fields, defaults)
    if earliest is not None:
        defaults.setdefault("started_at", earliest)
    fields["metadata"] = metadata
    return TraceWrite(
        trace_id=trace_id,
        mode="upsert",
        fields=fields,
        defaults=defaults,
        spans=[SpanPart(values=span.values) for span in build.spans.values()],
    )


def _root_fields(values: dict[str, Any], fields: dict[str, Any], defaults: dict[str, Any]) -> None:
    """The root span ends its trace; its name and input name and describe the trace."""
    defaults["name"] = values["name"]
    if values.get("input") is not None:
        defaults["input"] = values["input"]
    if values.get("output") is not None:
        defaults["output"] = values["output"]
    fields["started_at"] = values["started_at"]
    if values.get("ended_at") is None:
        return
    fields["ended_at"] = values["ended_at"]
    if values.get("error") is not None:
        fields["status"] = "failed"
        fields["error"] = values["error"]
    else:
        fields["status"] = "completed"
