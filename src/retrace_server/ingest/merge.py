"""Pure rules of a write: how a part meets what is stored, and what a trace's totals are.

Everything here works on stored forms (`ingest.rows`) and touches no database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from retrace_server.errors import InvalidInput
from retrace_server.ingest.rows import is_empty, merge_json_objects, parse_time, started_before
from retrace_server.pricing import PriceTable

# Every column of a stored span row but the database's own key.
SPAN_COLUMNS = (
    "id",
    "trace_id",
    "user_id",
    "parent_id",
    "span_type",
    "name",
    "model",
    "input",
    "output",
    "input_tokens",
    "output_tokens",
    "cost",
    "duration_ms",
    "metadata",
    "agent_id",
    "parent_agent_id",
    "agent_role",
    "started_at",
    "ended_at",
    "error",
    "cost_source",
)
TRACE_COLUMNS = (
    "id",
    "user_id",
    "name",
    "status",
    "input",
    "output",
    "metadata",
    "session_id",
    "project_id",
    "error",
    "lossy",
    "started_at",
    "ended_at",
    "last_activity_at",
    "total_tokens",
    "total_cost",
    "total_duration_ms",
    "span_count",
    "created_at",
    "updated_at",
)
_CLEARABLE_TRACE_FIELDS = ("name", "input", "output", "session_id", "project_id", "error", "ended_at")


def merge_span(
    stored: Mapping[str, Any] | None, part: Mapping[str, Any], authority: frozenset[str]
) -> dict[str, Any]:
    """A stored span (or an earlier part of it in the same write) with one more part applied."""
    if stored is None:
        return dict(part)
    merged = dict(stored)
    for key, value in part.items():
        if key == "metadata":
            merged["metadata"] = merge_json_objects(stored.get("metadata"), value, field="metadata")
        elif key == "cost_source":
            continue  # follows `cost`, below
        elif key in authority or is_empty(stored.get(key)):
            merged[key] = value
            if key == "cost":
                merged["cost_source"] = "reported"
    return merged


def complete_span(row: dict[str, Any], *, trace_id: str, user_id: str, now: str, at: str) -> dict[str, Any]:
    """Fills what a span lacks so it can be stored, and checks it as a whole."""
    row["trace_id"] = trace_id
    row["user_id"] = user_id
    if row.get("span_type") is None:
        row["span_type"] = "llm_call"
    if row.get("name") is None:
        row["name"] = ""
    if is_empty(row.get("metadata")):
        row["metadata"] = "{}"
    if row.get("started_at") is None:
        ended_at = row.get("ended_at")
        row["started_at"] = started_before(ended_at, row.get("duration_ms")) if ended_at else now
    ended_at = row.get("ended_at")
    if ended_at is not None and ended_at < row["started_at"]:
        raise InvalidInput(f"{at}.ended_at: is before its started_at")
    return row


def settle_cost(row: dict[str, Any], prices: PriceTable) -> None:
    """A cost the client did not report is estimated from the price table (or left empty)."""
    if row.get("cost_source") == "reported":
        return
    estimate = prices.cost(
        row.get("model"), input_tokens=row.get("input_tokens"), output_tokens=row.get("output_tokens")
    )
    row["cost"] = estimate
    row["cost_source"] = "estimated" if estimate is not None else None


def new_trace(
    *, trace_id: str, user_id: str, fields: Mapping[str, Any], defaults: Mapping[str, Any], now: str
) -> dict[str, Any]:
    """A trace row from a write's fields, before its totals."""
    given = {
        **{k: v for k, v in defaults.items() if v is not None},
        **{k: v for k, v in fields.items() if v is not None},
    }
    row: dict[str, Any] = {
        "id": trace_id,
        "user_id": user_id,
        "name": None,
        "status": "running",
        "input": None,
        "output": None,
        "metadata": "{}",
        "session_id": None,
        "project_id": None,
        "error": None,
        "lossy": False,
        "started_at": now,
        "ended_at": None,
        "last_activity_at": None,
        "total_tokens": 0,
        "total_cost": 0.0,
        "total_duration_ms": 0,
        "span_count": 0,
        "created_at": now,
        "updated_at": now,
    }
    row.update(given)
    return _settle_end(row, now=now)


def updated_trace(
    stored: Mapping[str, Any], *, fields: Mapping[str, Any], defaults: Mapping[str, Any], now: str
) -> dict[str, Any]:
    """The stored trace with a write's fields applied (all columns, for `changed_columns`)."""
    row = dict(stored)
    for key, value in defaults.items():
        if value is not None and is_empty(row.get(key)):
            row[key] = value
    for key, value in fields.items():
        if key == "metadata":
            row["metadata"] = merge_json_objects(row.get("metadata"), value, field="metadata")
        elif key == "lossy":
            row["lossy"] = bool(row.get("lossy")) or bool(value)
        elif value is not None or key in _CLEARABLE_TRACE_FIELDS:
            row[key] = value
    return _settle_end(row, now=now)


def _settle_end(row: dict[str, Any], *, now: str) -> dict[str, Any]:
    if row["status"] != "running" and row.get("ended_at") is None:
        row["ended_at"] = now
    if row.get("ended_at") is not None and row["ended_at"] < row["started_at"]:
        raise InvalidInput("ended_at: is before started_at")
    return row


@dataclass(frozen=True)
class SpanTotals:
    """What a trace's stored spans add up to; None where no span carries the figure."""

    count: int
    tokens: int | None
    cost: float | None

    @classmethod
    def of(cls, rows: list[dict[str, Any]]) -> SpanTotals:
        tokens = [r[k] for r in rows for k in ("input_tokens", "output_tokens") if r.get(k) is not None]
        costs = [r["cost"] for r in rows if r.get("cost") is not None]
        return cls(len(rows), sum(tokens) if tokens else None, sum(costs) if costs else None)


def latest_activity(rows: list[dict[str, Any]], current: str | None) -> str | None:
    latest = current
    for row in rows:
        moment = row.get("ended_at") or row["started_at"]
        if latest is None or moment > latest:
            latest = moment
    return latest


def totals(
    row: Mapping[str, Any], spans: SpanTotals, *, client: Mapping[str, Any], last_activity_at: str | None
) -> dict[str, Any]:
    """Totals come from the spans; the client's figures stand in where no span carries one."""
    started = parse_time(row["started_at"])
    if row.get("ended_at") is not None:
        duration_ms = int((parse_time(row["ended_at"]) - started).total_seconds() * 1000)
    elif client.get("total_duration_ms") is not None:
        duration_ms = int(client["total_duration_ms"])
    elif last_activity_at is not None:
        duration_ms = int((parse_time(last_activity_at) - started).total_seconds() * 1000)
    else:
        duration_ms = 0
    return {
        "span_count": spans.count,
        "total_tokens": spans.tokens if spans.tokens is not None else int(client.get("total_tokens") or 0),
        "total_cost": float(spans.cost if spans.cost is not None else client.get("total_cost") or 0.0),
        "total_duration_ms": max(0, duration_ms),
        "last_activity_at": last_activity_at,
    }


def changed_columns(stored: Mapping[str, Any], row: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in row.items() if stored.get(key) != value}
