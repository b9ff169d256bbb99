"""OTLP/JSON export bodies written by hand, as an application without an OTel SDK would send them."""

from __future__ import annotations

import os
from typing import Any

import orjson

BASE_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


def any_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list | tuple):
        return {"arrayValue": {"values": [any_value(v) for v in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": key_values(value)}}
    return {"stringValue": str(value)}


def key_values(attributes: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": key, "value": any_value(value)} for key, value in attributes.items()]


def trace_id() -> str:
    return os.urandom(16).hex()


def span_id() -> str:
    return os.urandom(8).hex()


def span(
    trace: str,
    sid: str,
    name: str,
    *,
    parent: str | None = None,
    start_s: float = 0.0,
    end_s: float | None = 1.0,
    attributes: dict[str, Any] | None = None,
    error: str | None = None,
    events: list[dict[str, Any]] | None = None,
    kind: int = 1,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "traceId": trace,
        "spanId": sid,
        "name": name,
        "kind": kind,
        "startTimeUnixNano": str(BASE_NS + int(start_s * 1e9)),
        "attributes": key_values(attributes or {}),
    }
    if parent:
        out["parentSpanId"] = parent
    if end_s is not None:
        out["endTimeUnixNano"] = str(BASE_NS + int(end_s * 1e9))
    if error is not None:
        out["status"] = {"code": 2, "message": error}
    if events:
        out["events"] = events
    return out


def event(name: str, at_s: float, attributes: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "timeUnixNano": str(BASE_NS + int(at_s * 1e9)),
        "attributes": key_values(attributes),
    }


def export(
    spans: list[dict[str, Any]], *, resource: dict[str, Any] | None = None, scope: str = "hand-written"
) -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": key_values(resource or {"service.name": "travel-agent"})},
                "scopeSpans": [{"scope": {"name": scope, "version": "1.0"}, "spans": spans}],
            }
        ]
    }


def log_record(
    trace: str,
    sid: str,
    event_name: str,
    *,
    body: Any = None,
    attributes: dict[str, Any] | None = None,
    at_s: float = 0.5,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "timeUnixNano": str(BASE_NS + int(at_s * 1e9)),
        "traceId": trace,
        "spanId": sid,
        "eventName": event_name,
        "attributes": key_values(attributes or {}),
    }
    if body is not None:
        record["body"] = any_value(body)
    return record


def logs_export(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceLogs": [
            {
                "resource": {"attributes": key_values({"service.name": "travel-agent"})},
                "scopeLogs": [{"scope": {"name": "hand-written"}, "logRecords": records}],
            }
        ]
    }


def dumps(document: dict[str, Any]) -> bytes:
    return orjson.dumps(document)
