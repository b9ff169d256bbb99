"""What every caller hands the ingest module: traces and span parts of one user, by id.

REST create and PATCH, the stream, replays and OTLP all describe their writes in these terms;
`ingest.write` is the only code that turns them into rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

TraceMode = Literal["create", "update", "upsert"]
"""create: a new trace, refused (`TraceExists`) when the id is taken;
update: an existing trace, refused (`TraceNotFound`) when there is none;
upsert: created when missing, else updated (the stream, replays, OTLP)."""

SPAN_FIELDS = (
    "id",
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
)
"""The keys of `SpanPart.values` (`id` is required; a missing key counts as None)."""

TRACE_FIELDS = (
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
)
"""The keys of `TraceWrite.fields` and `TraceWrite.defaults`."""

CLIENT_TOTALS = ("total_tokens", "total_cost", "total_duration_ms")

ALL_SPAN_FIELDS = frozenset(SPAN_FIELDS)
SPAN_END_FIELDS = frozenset(
    ("output", "ended_at", "duration_ms", "input_tokens", "output_tokens", "cost", "error")
)
"""What a span's end reports; everything else about a span is known when it starts."""


@dataclass
class SpanPart:
    """A span, or one part of it (a stream's start or end, an OTLP log event).

    When the span is already stored, the fields named in `authority` overwrite the stored
    values where this part holds a value; this part's other values only fill stored fields that
    are empty. A None never wipes a stored value, so parts may arrive in any order, repeated.
    `metadata` is always merged key by key, this part's keys winning.
    A span whose first part lacks `span_type`, `name` or `started_at` is stored with
    `llm_call`, `""` and `ended_at - duration_ms` (or now) until a later part says better.
    """

    values: dict[str, Any]
    authority: frozenset[str] = ALL_SPAN_FIELDS


@dataclass
class TraceWrite:
    """One trace of the caller and the span parts to store in it, in one transaction."""

    trace_id: str
    mode: TraceMode = "upsert"
    fields: dict[str, Any] = field(default_factory=dict)
    """Trace fields this write sets (keys of TRACE_FIELDS). `metadata` merges into the stored
    metadata; `lossy` only ever turns on; a status other than `running` without `ended_at`
    ends the trace now."""
    defaults: dict[str, Any] = field(default_factory=dict)
    """Trace fields used only where the stored trace has none (or when it is created)."""
    client_totals: dict[str, Any] = field(default_factory=dict)
    """The client's own `total_tokens` / `total_cost` / `total_duration_ms`: they stand in only
    where no stored span carries the figure."""
    spans: list[SpanPart] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)
    """What a caller tells the write hooks (the stream's connection, a cascade replay's fork);
    never stored."""


@dataclass
class WriteOutcome:
    """What became of one `TraceWrite`: the stored trace (without spans), or why it was refused."""

    trace_id: str
    trace: dict[str, Any] | None = None
    error: Exception | None = None
    created: bool = False
    notes: dict[str, Any] = field(default_factory=dict)
    """What hooks after the commit found about the trace (`halt`: a guardrail's reason to stop
    the run); the caller tells its client."""

    @property
    def ok(self) -> bool:
        return self.error is None
