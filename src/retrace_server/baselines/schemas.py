"""Golden marks and regression comparisons as the API speaks them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from retrace_server.traces.schemas import RegressionVerdict


class GoldenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    golden: bool = Field(description="true marks the trace as its name's baseline; false unmarks it")


class GoldenOut(BaseModel):
    trace_id: str
    golden: bool
    trace_name: str | None
    project_id: str | None
    marked_at: datetime | None


class Finding(BaseModel):
    kind: Literal[
        "steps", "tool_sequence", "new_error", "fewer_errors", "model", "sampling", "tokens", "cost"
    ]
    effect: Literal["regressed", "improved", "changed"]
    detail: str


class RegressionReport(BaseModel):
    trace_id: str
    baseline_trace_id: str
    verdict: RegressionVerdict
    summary: str
    tolerance: float = Field(
        description="Share of the baseline's tokens or cost a run may differ by unjudged"
    )
    findings: list[Finding]
    totals: dict[str, Any] = Field(description="tokens, cost, steps, tool_calls, errors of baseline and run")
    first_divergence: dict[str, Any] | None
    steps: list[dict[str, Any]] | None = Field(
        description="The aligned steps (null once the baseline trace is deleted)"
    )
    compared_at: datetime
