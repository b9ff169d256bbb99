"""Fork payloads: what a fork changes, and the shapes of its answers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from retrace_server.schemas import Answer

ForkStatus = Literal["created", "running", "completed", "failed"]
Identifier = Annotated[str, Field(min_length=1, max_length=128)]


class ReplayParameters(BaseModel):
    """Request options sent to the provider as given: names of OpenAI Chat Completions or Anthropic
    Messages options (`retrace_server.providers.parameters`); any other name is refused."""

    model_config = ConfigDict(extra="allow")

    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    top_k: Annotated[int, Field(ge=1)] | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    seed: int | None = None
    stop: str | list[str] | None = None

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class Modifications(BaseModel):
    """What a replay changes at the fork point."""

    modified_input: Any = Field(
        None,
        description="A string replaces the last user message (or the tool's output at a tool span); "
        "an object is merged into the recorded input.",
    )
    model: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    parameters: ReplayParameters | None = None


class ForkCreate(Modifications):
    trace_id: Identifier
    fork_point_span_id: Identifier = Field(description="The span to branch at (alias: `span_id`).")
    name: Annotated[str, Field(max_length=512)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _span_id_alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and "fork_point_span_id" not in data and "span_id" in data:
            data = {**data, "fork_point_span_id": data["span_id"]}
            del data["span_id"]
        return data


class ReplayRequest(Modifications):
    """Fields given here override the fork's for this replay (and are kept in its history)."""

    mode: Literal["auto", "server", "agent"] = Field(
        "auto",
        description="`agent`: re-run by the live agent connected for the trace's name (409 when none is); "
        "`server`: replayed by the server; `auto`: the agent when one is connected, else the server.",
    )


class ClaimRequest(BaseModel):
    execution_id: Annotated[str, Field(min_length=1, max_length=36)]


# Answers. Services build them as dicts (rendered by orjson); these models document them and the
# tests check every answer against them.

RunStatus = Literal["running", "completed", "failed"]
StepStatus = Literal["unchanged", "changed", "added", "removed"]
Verdict = Literal["improved", "regressed", "unchanged", "mixed"]


class FailedStep(BaseModel):
    """The step a failed replay stopped at."""

    model_config = ConfigDict(extra="allow")

    index: int = Field(description="Position of the step in the original trace's spans")
    span_id: str
    name: str
    span_type: str


class ForkRunRecord(Answer):
    """One replay of a fork: the changes it replayed, its result trace and how it ended."""

    execution_id: str
    status: RunStatus
    result_trace_id: str | None
    modified_input: Any
    model: str | None
    parameters: dict[str, Any]
    error: str | None
    failed_step: FailedStep | None
    claimed_at: datetime | None = Field(description="When a live agent took the replay on, if one did")
    started_at: datetime
    ended_at: datetime | None


class ForkSummary(Answer):
    id: str
    trace_id: str = Field(description="The forked (original) trace")
    fork_point_span_id: str
    name: str | None
    status: ForkStatus
    modified_input: Any
    model: str | None
    parameters: dict[str, Any]
    result_trace_id: str | None = Field(description="The trace of the latest replay")
    execution_id: str | None = Field(description="The latest replay's execution")
    error: str | None
    created_at: datetime
    updated_at: datetime


class ForkDetail(ForkSummary):
    runs: list[ForkRunRecord] = Field(description="Every replay of the fork, oldest first")


class StepSummary(Answer):
    id: str
    span_type: str
    name: str
    model: str | None
    output: Any
    input_tokens: int | None
    output_tokens: int | None
    cost: float | None
    duration_ms: int | None
    error: str | None
    replay: str | None = Field(
        description="How the replay made the span: recorded, executed, replayed, modified"
    )


class DiffStep(Answer):
    index: int
    status: StepStatus
    original: StepSummary | None
    fork: StepSummary | None
    output_diff: str | None = Field(description="Unified diff of the two outputs; null when unchanged")


class FirstDivergence(Answer):
    index: int
    original_span_id: str | None
    fork_span_id: str | None


class DiffSummary(Answer):
    tokens_delta: int
    cost_delta: float
    duration_ms_delta: int = Field(description="Sum of span durations, fork minus original")
    span_count_delta: int
    error_delta: int


class ForkDiff(Answer):
    fork_id: str
    original_trace_id: str
    fork_trace_id: str
    first_divergence: FirstDivergence | None
    steps: list[DiffStep]
    summary: DiffSummary
    verdict: Verdict
