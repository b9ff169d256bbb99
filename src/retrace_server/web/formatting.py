"""How figures read on a page: durations, money, counts, timestamps."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

DASH = "\u2013"  # en dash: a figure that is not known
MINUS = "\u2212"  # a true minus sign, as wide as the plus


def duration(ms: Any) -> str:
    if ms is None:
        return DASH
    ms = float(ms)
    if ms < 1:
        return f"{ms:.2f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def money(value: Any) -> str:
    if value is None:
        return DASH
    value = float(value)
    if value == 0:
        return "$0"
    if abs(value) < 0.0001:
        return f"${value:.6f}"
    if abs(value) < 0.01:
        return f"${value:.4f}"
    return f"${value:,.2f}"


def signed_money(value: Any) -> str:
    if value is None:
        return DASH
    sign = "+" if float(value) > 0 else MINUS if float(value) < 0 else "±"
    return sign + money(abs(float(value)))


def count(value: Any) -> str:
    if value is None:
        return DASH
    return f"{int(value):,}"


def signed(value: Any) -> str:
    if value is None:
        return DASH
    value = int(value)
    return f"+{value:,}" if value > 0 else f"{MINUS}{abs(value):,}" if value < 0 else "±0"


def signed_duration(ms: Any) -> str:
    if ms is None:
        return DASH
    ms = float(ms)
    sign = "+" if ms > 0 else MINUS if ms < 0 else "±"
    return sign + duration(abs(ms))


def _as_datetime(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def timestamp(value: Any) -> str:
    """`2026-12-02 14:03:22` in UTC: exact, sortable, the same for everyone reading a shared page."""
    moment = _as_datetime(value)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else DASH


def iso(value: Any) -> str:
    moment = _as_datetime(value)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else ""


def ago(value: Any, *, now: datetime | None = None) -> str:
    moment = _as_datetime(value)
    if moment is None:
        return DASH
    seconds = int(((now or datetime.now(UTC)) - moment).total_seconds())
    if seconds < 5:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def run_duration(trace: dict[str, Any]) -> Any:
    """A run's duration in ms: from its timestamps when it ended, else what the server reports."""
    started, ended = _as_datetime(trace.get("started_at")), _as_datetime(trace.get("ended_at"))
    if started and ended:
        return max(0.0, (ended - started).total_seconds() * 1000)
    return trace.get("total_duration_ms") or trace.get("duration_ms")


FILTERS = {
    "duration": duration,
    "money": money,
    "signed_money": signed_money,
    "count": count,
    "signed": signed,
    "signed_duration": signed_duration,
    "timestamp": timestamp,
    "iso": iso,
    "ago": ago,
    "run_duration": run_duration,
}
