"""Span and trace values checked and put in the form the database stores, on every dialect.

JSON is stored as text and timestamps as fixed-width ISO 8601 UTC text (`...T12:00:00.000000Z`,
so text order is time order); the PostgreSQL store casts both on the way in and renders them
back the same way. Merging parts therefore never decodes what it only copies, and checking a
value costs no more than encoding it, which storing needs anyway.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import orjson

from retrace_server.db.types import sqlite_timestamp
from retrace_server.errors import InvalidInput
from retrace_server.ingest.contract import SPAN_FIELDS, TRACE_FIELDS

SPAN_TYPES = frozenset(("llm_call", "tool_call", "tool_result", "reasoning", "action", "error", "fork_point"))
TRACE_STATUSES = frozenset(("running", "completed", "failed"))

# Integer columns are 32-bit on PostgreSQL; totals add them up in 64 bits.
MAX_TOKENS = 2**31 - 1
MAX_DURATION_MS = 2**53
MAX_COST = 1e12

_ID_MAX = 128
# An id must be addressable as one path segment: no separators, escapes or blanks.
_ID_FORBIDDEN = re.compile(r"[/\\?#%\s\x00-\x1f\x7f]")
ID_RULE = "1-128 characters, none of / \\ ? # % or whitespace, and not . or .."

_SPAN_TEXT_LIMITS = {
    "parent_id": _ID_MAX,
    "name": 512,
    "model": 256,
    "agent_id": 256,
    "parent_agent_id": 256,
    "agent_role": 256,
}
_SPAN_COUNTS = {"input_tokens": MAX_TOKENS, "output_tokens": MAX_TOKENS, "duration_ms": MAX_DURATION_MS}
_TRACE_TEXT_LIMITS = {"name": 512, "session_id": 256, "project_id": 256}


def id_problem(value: Any) -> str | None:
    """Why `value` cannot be an id (None when it can)."""
    if not isinstance(value, str) or not value or len(value) > _ID_MAX:
        return f"must be {ID_RULE}"
    if value in (".", "..") or _ID_FORBIDDEN.search(value):
        return f"must be {ID_RULE}"
    return None


def check_id(value: Any, *, field: str) -> str:
    problem = id_problem(value)
    if problem:
        raise InvalidInput(f"{field}: {problem}")
    return str(value)


def json_text(value: Any, *, field: str) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError as exc:
        reason = str(exc)
        if "64-bit" in reason:
            reason = "a number is out of range (integers are stored in 64 bits)"
        raise InvalidInput(f"{field}: {reason}") from None


def time_text(value: Any, *, field: str) -> str:
    """A timestamp (or ISO 8601 text with its offset, as reads answer it) in stored form."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None:
            raise InvalidInput(f"{field}: must be an ISO 8601 timestamp with a time zone")
        value = parsed
    if not isinstance(value, datetime):
        raise InvalidInput(f"{field}: must be a timestamp")
    return sqlite_timestamp(value)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def is_empty(stored: Any) -> bool:
    """A stored value that a part's value may fill: nothing, or JSON null."""
    return stored is None or stored == "null"


def _text(value: Any, *, field: str, limit: int | None) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{field}: must be a string")
    if limit is not None and len(value) > limit:
        raise InvalidInput(f"{field}: at most {limit} characters")
    return value


def _count(value: Any, *, field: str, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{field}: must be an integer")
    if not 0 <= value <= maximum:
        raise InvalidInput(f"{field}: must be between 0 and {maximum}")
    return value


def _money(value: Any, *, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{field}: must be a number")
    if not (math.isfinite(value) and 0 <= value <= MAX_COST):
        raise InvalidInput(f"{field}: must be between 0 and {MAX_COST:g}")
    return float(value)


def _metadata(value: Any, *, field: str) -> str:
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{field}: must be an object")
    return json_text(value, field=field)


def encode_span(values: Mapping[str, Any], *, at: str) -> dict[str, Any]:
    """The stored form of a span part's values, checked; only fields holding a value.

    `at` names the span in errors (`spans[3]`), so a refusal says which span and which field.
    """
    encoded: dict[str, Any] = {"id": check_id(values.get("id"), field=f"{at}.id")}
    for key in SPAN_FIELDS:
        value = values.get(key)
        if value is None or key == "id":
            continue
        field = f"{at}.{key}"
        if key in ("input", "output"):
            encoded[key] = json_text(value, field=field)
        elif key == "metadata":
            encoded[key] = _metadata(value, field=field)
        elif key in ("started_at", "ended_at"):
            encoded[key] = time_text(value, field=field)
        elif key in _SPAN_COUNTS:
            encoded[key] = _count(value, field=field, maximum=_SPAN_COUNTS[key])
        elif key == "cost":
            encoded[key] = _money(value, field=field)
            encoded["cost_source"] = "reported"
        elif key == "span_type":
            if value not in SPAN_TYPES:
                raise InvalidInput(f"{field}: must be one of {', '.join(sorted(SPAN_TYPES))}")
            encoded[key] = value
        elif key == "error":
            encoded[key] = _text(value, field=field, limit=None)
        else:
            encoded[key] = _text(value, field=field, limit=_SPAN_TEXT_LIMITS[key])
    return encoded


def encode_trace_fields(values: Mapping[str, Any], *, keep_nulls: bool) -> dict[str, Any]:
    """The stored form of trace fields, checked. With `keep_nulls`, a None that the caller set
    clears a nullable field; fields that cannot be empty (status, lossy, started_at) ignore it."""
    encoded: dict[str, Any] = {}
    for key, value in values.items():
        if key not in TRACE_FIELDS:
            raise InvalidInput(f"{key}: not a trace field")
        if value is None:
            if keep_nulls and key not in ("status", "lossy", "started_at", "metadata"):
                encoded[key] = None
            continue
        if key in ("input", "output"):
            encoded[key] = json_text(value, field=key)
        elif key == "metadata":
            encoded[key] = _metadata(value, field=key)
        elif key in ("started_at", "ended_at"):
            encoded[key] = time_text(value, field=key)
        elif key == "status":
            if value not in TRACE_STATUSES:
                raise InvalidInput(f"status: must be one of {', '.join(sorted(TRACE_STATUSES))}")
            encoded[key] = value
        elif key == "lossy":
            encoded[key] = bool(value)
        elif key == "error":
            encoded[key] = _text(value, field=key, limit=None)
        else:
            encoded[key] = _text(value, field=key, limit=_TRACE_TEXT_LIMITS[key])
    return encoded


def encode_client_totals(values: Mapping[str, Any]) -> dict[str, Any]:
    totals: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        if key == "total_cost":
            totals[key] = _money(value, field=key)
        elif key in ("total_tokens", "total_duration_ms"):
            totals[key] = _count(value, field=key, maximum=2**62)
        else:
            raise InvalidInput(f"{key}: not a trace total")
    return totals


def merge_json_objects(stored: str | None, incoming: str, *, field: str) -> str:
    """Two JSON objects as text, the incoming keys winning."""
    if is_empty(stored):
        return incoming
    merged = {**orjson.loads(stored or "{}"), **orjson.loads(incoming)}
    return json_text(merged, field=field)


def started_before(ended_at: str, duration_ms: int | None) -> str:
    """The start of a span known only by its end and duration."""
    return sqlite_timestamp(parse_time(ended_at) - timedelta(milliseconds=duration_ms or 0))
