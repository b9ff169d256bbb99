"""OTLP exports stored through the ingest module: one export, one call, each trace atomic."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from retrace_server.errors import DomainError, ServiceUnavailable
from retrace_server.ingest import Ingestor
from retrace_server.otlp.logs import map_logs
from retrace_server.otlp.traces import MappedExport, map_export

log = logging.getLogger("retrace_server.otlp")


@dataclass(frozen=True)
class ExportResult:
    """How many of the export's spans (or log records) were refused, and why."""

    rejected: int
    message: str


async def create_spans(
    ingestor: Ingestor, *, user_id: str, export: ExportTraceServiceRequest
) -> ExportResult:
    return await _write(ingestor, user_id=user_id, mapped=map_export(export))


async def create_log_events(
    ingestor: Ingestor, *, user_id: str, export: ExportLogsServiceRequest
) -> ExportResult:
    return await _write(ingestor, user_id=user_id, mapped=map_logs(export))


async def _write(ingestor: Ingestor, *, user_id: str, mapped: MappedExport) -> ExportResult:
    if mapped.writes:
        outcomes = await ingestor.write(user_id=user_id, writes=mapped.writes)
        for outcome, count in zip(outcomes, mapped.span_counts, strict=True):
            if outcome.error is None:
                continue
            if isinstance(outcome.error, ServiceUnavailable):
                # A passing fault: the exporter retries the whole export, which stores the same.
                raise outcome.error
            reason = (
                outcome.error.message if isinstance(outcome.error, DomainError) else "could not be stored"
            )
            if not isinstance(outcome.error, DomainError):
                log.error("OTLP trace %s refused: %r", outcome.trace_id, outcome.error)
            mapped.reject(count, f"trace {outcome.trace_id}: {reason}")
    return ExportResult(rejected=mapped.rejected, message=mapped.message())
