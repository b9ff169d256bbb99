"""Trace and span payloads, with the official SDK's field names."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

SpanType = Literal["llm_call", "tool_call", "tool_result", "reasoning", "action", "error", "fork_point"]
TraceStatus = Literal["running", "completed", "failed"]


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcTimestamp = Annotated[datetime, AfterValidator(_as_utc)]
Identifier = Annotated[str, Field(min_length=1, max_length=128)]
Count = Annotated[int, Field(ge=0)]
Money = Annotated[float, Field(ge=0)]


class _KeepsExtras(BaseModel):
    """Unknown fields are kept (moved into `metadata` by the service), never refused."""

    model_config = ConfigDict(extra="allow")

    def extras(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class SpanIn(_KeepsExtras):
    id: Identifier | None = None
    trace_id: Identifier | None = None
    parent_id: Identifier | None = None
    span_type: SpanType = "llm_call"
    name: Annotated[str, Field(max_length=512)] = ""
    model: Annotated[str, Field(max_length=256)] | None = None
    input: Any = None
    output: Any = None
    input_tokens: Count | None = None
    output_tokens: Count | None = None
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
    started_at: UtcTimestamp | None = None
    ended_at: UtcTimestamp | None = None
    error: str | None = None
    lossy: bool = False
    total_tokens: Count | None = None
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
    started_at: UtcTimestamp | None = None
    ended_at: UtcTimestamp | None = None
    error: str | None = None
    lossy: bool | None = None
    total_tokens: Count | None = None
    total_cost: Money | None = None
    total_duration_ms: Count | None = None
    spans: list[SpanIn] = Field(default_factory=list)


class TraceFilters(BaseModel):
    status: TraceStatus | None = None
    session_id: str | None = None
    name: str | None = None
    since: UtcTimestamp | None = None
    until: UtcTimestamp | None = None
