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
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from retrace_server.db.types import sqlite_timestamp
from retrace_server.errors import InvalidInput

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

_TRACE_TEXT_LIMITS = {"name": 512, "session_id": 256, "project_id": 256}


def _is_addressable(value: Any) -> bool:
    return (
        type(value) is str
        and 0 < len(value) <= _ID_MAX
        and value not in (".", "..")
        and not _ID_FORBIDDEN.search(value)
    )


def id_problem(value: Any) -> str | None:
    """Why `value` cannot be an id (None when it can)."""
    return None if _is_addressable(value) else f"must be {ID_RULE}"


def check_id(value: Any, *, field: str) -> str:
    problem = id_problem(value)
    if problem:
        raise InvalidInput(f"{field}: {problem}")
    return str(value)


def json_text(value: Any, *, field: str) -> str:
    try:
        return _json_value(value)
    except _Refused as refused:
        raise InvalidInput(f"{field}: {refused}") from None


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


class _Refused(Exception):
    """A value's problem, before the caller names its field."""


def _json_value(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError as exc:
        reason = str(exc)
        raise _Refused(
            "a number is out of range (integers are stored in 64 bits)" if "64-bit" in reason else reason
        ) from None


def _object_value(value: Any) -> str:
    if not isinstance(value, Mapping):
        raise _Refused("must be an object")
    return _json_value(value)


def _time_value(value: Any) -> str:
    if type(value) is datetime and value.tzinfo is UTC:
        return sqlite_timestamp(value)
    try:
        return time_text(value, field="")
    except InvalidInput as exc:
        raise _Refused(exc.message.removeprefix(": ")) from None


def _count_value(maximum: int) -> Any:
    def check(value: Any) -> int:
        if type(value) is not int:
            raise _Refused("must be an integer")
        if not 0 <= value <= maximum:
            raise _Refused(f"must be between 0 and {maximum}")
        return value

    return check


def _cost_value(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Refused("must be a number")
    if not (math.isfinite(value) and 0 <= value <= MAX_COST):
        raise _Refused(f"must be between 0 and {MAX_COST:g}")
    return float(value)


def _text_value(limit: int | None) -> Any:
    def check(value: Any) -> str:
        if type(value) is not str:
            raise _Refused("must be a string")
        if limit is not None and len(value) > limit:
            raise _Refused(f"at most {limit} characters")
        return value

    return check


def _span_type_value(value: Any) -> str:
    if value not in SPAN_TYPES:
        raise _Refused(f"must be one of {', '.join(sorted(SPAN_TYPES))}")
    return str(value)


_SPAN_ENCODERS: dict[str, Any] = {
    "parent_id": _text_value(_ID_MAX),
    "span_type": _span_type_value,
    "name": _text_value(512),
    "model": _text_value(256),
    "input": _json_value,
    "output": _json_value,
    "input_tokens": _count_value(MAX_TOKENS),
    "output_tokens": _count_value(MAX_TOKENS),
    "cost": _cost_value,
    "duration_ms": _count_value(MAX_DURATION_MS),
    "metadata": _object_value,
    "agent_id": _text_value(256),
    "parent_agent_id": _text_value(256),
    "agent_role": _text_value(256),
    "started_at": _time_value,
    "ended_at": _time_value,
    "error": _text_value(None),
}


def encode_span(values: Mapping[str, Any], *, at: str) -> dict[str, Any]:
    """The stored form of a span part's values, checked; only fields holding a value.

    `at` names the span in errors (`spans[3]`), so a refusal says which span and which field.
    Other keys than span fields are ignored.
    """
    span_id = values.get("id")
    encoded: dict[str, Any] = {
        "id": span_id if _is_addressable(span_id) else check_id(span_id, field=f"{at}.id")
    }
    key = ""
    try:
        for key, value in values.items():
            if value is not None and (encode := _SPAN_ENCODERS.get(key)) is not None:
                encoded[key] = encode(value)
    except _Refused as refused:
        raise InvalidInput(f"{at}.{key}: {refused}") from None
    if "cost" in encoded:
        encoded["cost_source"] = "reported"
    return encoded


_TRACE_ENCODERS: dict[str, Any] = {
    "name": _text_value(512),
    "status": None,  # below
    "input": _json_value,
    "output": _json_value,
    "metadata": _object_value,
    "session_id": _text_value(256),
    "project_id": _text_value(256),
    "error": _text_value(None),
    "lossy": bool,
    "started_at": _time_value,
    "ended_at": _time_value,
}


def _status_value(value: Any) -> str:
    if value not in TRACE_STATUSES:
        raise _Refused(f"must be one of {', '.join(sorted(TRACE_STATUSES))}")
    return str(value)


_TRACE_ENCODERS["status"] = _status_value
_NEVER_EMPTY = frozenset(("status", "lossy", "started_at", "metadata"))


def encode_trace_fields(values: Mapping[str, Any], *, keep_nulls: bool) -> dict[str, Any]:
    """The stored form of trace fields, checked. With `keep_nulls`, a None that the caller set
    clears a nullable field; fields that cannot be empty (status, lossy, started_at) ignore it."""
    encoded: dict[str, Any] = {}
    for key, value in values.items():
        encode = _TRACE_ENCODERS.get(key)
        if encode is None:
            raise InvalidInput(f"{key}: not a trace field")
        if value is None:
            if keep_nulls and key not in _NEVER_EMPTY:
                encoded[key] = None
            continue
        try:
            encoded[key] = encode(value)
        except _Refused as refused:
            raise InvalidInput(f"{key}: {refused}") from None
    return encoded


def encode_client_totals(values: Mapping[str, Any]) -> dict[str, Any]:
    totals: dict[str, Any] = {}
    checks = {
        "total_cost": _cost_value,
        "total_tokens": _count_value(2**62),
        "total_duration_ms": _count_value(2**62),
    }
    for key, value in values.items():
        if value is None:
            continue
        if key not in checks:
            raise InvalidInput(f"{key}: not a trace total")
        try:
            totals[key] = checks[key](value)
        except _Refused as refused:
            raise InvalidInput(f"{key}: {refused}") from None
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
