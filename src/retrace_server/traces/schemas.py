"""Trace and span payloads, with the official SDK's field names."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from retrace_server.ingest.rows import MAX_COST, MAX_DURATION_MS, MAX_TOKENS, id_problem

SpanType = Literal["llm_call", "tool_call", "tool_result", "reasoning", "action", "error", "fork_point"]
TraceStatus = Literal["running", "completed", "failed"]
RegressionVerdict = Literal["pass", "regressed", "improved", "changed"]


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _addressable(value: str) -> str:
    problem = id_problem(value)
    if problem:
        raise ValueError(problem)
    return value


UtcTimestamp = Annotated[datetime, AfterValidator(_as_utc)]
Identifier = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(_addressable)]
"""An id the client chooses; it must work as one URL path segment."""
Reference = Annotated[str, Field(min_length=1, max_length=128)]
Count = Annotated[int, Field(ge=0, le=MAX_DURATION_MS)]
Tokens = Annotated[int, Field(ge=0, le=MAX_TOKENS)]
Money = Annotated[float, Field(ge=0, le=MAX_COST, allow_inf_nan=False)]
Total = Annotated[int, Field(ge=0, le=2**62)]


class _KeepsExtras(BaseModel):
    """Unknown fields are kept (moved into `metadata` by the service), never refused."""

    model_config = ConfigDict(extra="allow")

    def extras(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class SpanIn(_KeepsExtras):
    id: Identifier | None = None
    trace_id: Reference | None = None
    parent_id: Reference | None = None
    span_type: SpanType = "llm_call"
    name: Annotated[str, Field(max_length=512)] = ""
    model: Annotated[str, Field(max_length=256)] | None = None
    input: Any = None
    output: Any = None
    input_tokens: Tokens | None = None
    output_tokens: Tokens | None = None
    cost: Money | None = None
    duration_ms: Count | None = None
    metadata: dict[str, Any] | None = None
    agent_id: Annotated[str, Field(max_length=256)] | None = None
    parent_agent_id: Annotated[str, Field(max_length=256)] | None = None
    agent_role: Annotated[str, Field(max_length=256)] | None = None
    started_at: UtcTimestamp | None = None
    ended_at: UtcTimestamp | None = None
    error: str | None = None


class TraceCreate(_KeepsExtras):
    id: Identifier | None = None
    name: Annotated[str, Field(max_length=512)] | None = None
    status: TraceStatus = "running"
    input: Any = None
    output: Any = None
    metadata: dict[str, Any] | None = None
    session_id: Annotated[str, Field(max_length=256)] | None = None
    project_id: Annotated[str, Field(max_length=256)] | None = None
    started_at: UtcTimestamp | None = None
    ended_at: UtcTimestamp | None = None
    error: str | None = None
    lossy: bool = False
    total_tokens: Total | None = None
    total_cost: Money | None = None
    total_duration_ms: Count | None = None
    spans: list[SpanIn] = Field(default_factory=list)


class TraceUpdate(_KeepsExtras):
    """The terminal fields the SDK sends, plus `spans` to append to a running trace."""

    name: Annotated[str, Field(max_length=512)] | None = None
    status: TraceStatus | None = None
    output: Any = None
    metadata: dict[str, Any] | None = None
    session_id: Annotated[str, Field(max_length=256)] | None = None
    project_id: Annotated[str, Field(max_length=256)] | None = None
    started_at: UtcTimestamp | None = None
    ended_at: UtcTimestamp | None = None
    error: str | None = None
    lossy: bool | None = None
    total_tokens: Total | None = None
    total_cost: Money | None = None
    total_duration_ms: Count | None = None
    spans: list[SpanIn] = Field(default_factory=list)


class TraceFilters(BaseModel):
    status: TraceStatus | None = None
    session_id: str | None = None
    project_id: str | None = None
    name: str | None = None
    since: UtcTimestamp | None = None
    until: UtcTimestamp | None = None
    golden: bool | None = None
    regression: RegressionVerdict | None = None


class SpanOut(BaseModel):
    """A stored span as the API answers it; timestamps are ISO 8601 UTC with `Z`."""

    id: str
    trace_id: str
    parent_id: str | None
    span_type: SpanType
    name: str
    model: str | None
    input: Any
    output: Any
    input_tokens: int | None
    output_tokens: int | None
    cost: float | None
    cost_source: Literal["reported", "estimated"] | None = Field(
        description="Whether the client reported the cost or the server estimated it from its price table"
    )
    duration_ms: int | None
    metadata: dict[str, Any]
    agent_id: str | None
    parent_agent_id: str | None
    agent_role: str | None
    started_at: str
    ended_at: str | None
    error: str | None


class TraceOut(BaseModel):
    """A stored trace without its spans."""

    id: str
    name: str | None
    status: TraceStatus
    input: Any
    output: Any
    metadata: dict[str, Any]
    session_id: str | None
    project_id: str | None
    error: str | None
    lossy: bool
    started_at: str
    ended_at: str | None
    total_tokens: int
    total_cost: float
    total_duration_ms: int
    span_count: int
    created_at: str
    updated_at: str


class TraceRegression(BaseModel):
    """The run's verdict against the golden baseline it was last compared with."""

    verdict: RegressionVerdict
    baseline_trace_id: str
    summary: str


class TraceBreach(BaseModel):
    """A guardrail policy the stored run broke."""

    policy_id: str
    policy_name: str
    kind: str = Field(description="run_budget | period_budget | tool_loop | tool_deny | tool_approval")
    action: str = Field(description="block | hold")
    reason: str


class TraceListItem(TraceOut):
    """A trace as lists show it: with its golden mark and regression verdict."""

    golden: bool = Field(description="Whether the trace is a golden baseline of its name (and project)")
    regression: TraceRegression | None = Field(
        description="How the run compared with its baseline (`GET .../regression` has the details); "
        "null when it was never compared"
    )


class TraceWithSpans(TraceListItem):
    breaches: list[TraceBreach] = Field(description="Guardrail policies the run broke, oldest first")
    spans: list[SpanOut] = Field(description="All spans in start order; `parent_id` draws the tree")
