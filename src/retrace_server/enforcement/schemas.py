"""Policies, checks, holds and breaches as the API speaks them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, StringConstraints, ValidationError

from retrace_server.errors import InvalidInput, describe_validation_errors

PolicyKind = Literal["run_budget", "period_budget", "tool_loop", "tool_deny", "tool_approval"]
POLICY_KINDS: tuple[str, ...] = ("run_budget", "period_budget", "tool_loop", "tool_deny", "tool_approval")
Action = Literal["block", "hold"]
OnTimeout = Literal["deny", "allow"]
Verdict = Literal["allow", "block", "hold"]
HoldStatus = Literal["pending", "approved", "denied", "expired"]

DEFAULT_HOLD_TIMEOUT_S = 300
MAX_HOLD_TIMEOUT_S = 7 * 24 * 3600

ToolName = Annotated[str, StringConstraints(min_length=1, max_length=512)]
Usd = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _PolicyFields(BaseModel):
    """What every kind shares. Unknown fields are refused, naming them."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    enabled: bool = True
    project_id: str | None = Field(
        None, min_length=1, max_length=256, description="Only runs of this project"
    )
    trace_name: str | None = Field(None, min_length=1, max_length=512, description="Only runs of this name")
    action: Action = Field("block", description="block stops the run; hold asks a person first")
    timeout_s: int | None = Field(
        None, ge=1, le=MAX_HOLD_TIMEOUT_S, description="With action hold: seconds a person has to decide"
    )
    on_timeout: OnTimeout | None = Field(
        None, description="With action hold: the verdict when nobody decides"
    )


class RunBudgetPolicy(_PolicyFields):
    kind: Literal["run_budget"]
    max_usd: Usd | None = None
    max_tokens: int | None = Field(None, ge=0)
    max_steps: int | None = Field(None, ge=0)


class PeriodBudgetPolicy(_PolicyFields):
    kind: Literal["period_budget"]
    period: Literal["day", "month"]
    max_usd: Usd | None = None
    max_tokens: int | None = Field(None, ge=0)


class ToolLoopPolicy(_PolicyFields):
    kind: Literal["tool_loop"]
    max_repeats: int = Field(
        ge=1, le=1_000_000, description="Calls of one tool with the same arguments allowed"
    )


class ToolDenyPolicy(_PolicyFields):
    kind: Literal["tool_deny"]
    tools: list[ToolName] = Field(min_length=1, max_length=200)


class ToolApprovalPolicy(_PolicyFields):
    kind: Literal["tool_approval"]
    tools: list[ToolName] = Field(min_length=1, max_length=200)
    action: Literal["hold"] = Field("hold", description="A tool approval always asks a person")
    timeout_s: int = Field(DEFAULT_HOLD_TIMEOUT_S, ge=1, le=MAX_HOLD_TIMEOUT_S)
    on_timeout: OnTimeout = "deny"


PolicySpec = Annotated[
    RunBudgetPolicy | PeriodBudgetPolicy | ToolLoopPolicy | ToolDenyPolicy | ToolApprovalPolicy,
    Field(discriminator="kind"),
]


class PolicyCreate(RootModel[PolicySpec]):
    """A policy: the shared fields and one `kind` with its own."""


KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "run_budget": ("max_usd", "max_tokens", "max_steps"),
    "period_budget": ("period", "max_usd", "max_tokens"),
    "tool_loop": ("max_repeats",),
    "tool_deny": ("tools",),
    "tool_approval": ("tools",),
}


def parse_policy(document: Any) -> PolicySpec:
    """A policy document validated, or InvalidInput naming the field."""
    try:
        spec = PolicyCreate.model_validate(document).root
    except ValidationError as exc:
        raise InvalidInput(_describe(exc)) from None
    _check_semantics(spec)
    return spec


def _describe(exc: ValidationError) -> str:
    errors = exc.errors()
    first: dict[str, Any] = dict(errors[0]) if errors else {}
    if first.get("type") == "union_tag_invalid":
        tag = (first.get("ctx") or {}).get("tag")
        return f"kind: unknown policy kind {tag!r}; expected one of {', '.join(POLICY_KINDS)}"
    if first.get("type") == "union_tag_not_found":
        return f"kind: required; one of {', '.join(POLICY_KINDS)}"
    if first.get("type") == "model_type":
        return "Request body must be a JSON object"
    return describe_validation_errors(errors, skip_prefix=("body", *POLICY_KINDS))


def _check_semantics(spec: PolicySpec) -> None:
    if isinstance(spec, RunBudgetPolicy) and (spec.max_usd, spec.max_tokens, spec.max_steps) == (None,) * 3:
        raise InvalidInput("max_usd: a run_budget needs at least one of max_usd, max_tokens, max_steps")
    if isinstance(spec, PeriodBudgetPolicy) and spec.max_usd is None and spec.max_tokens is None:
        raise InvalidInput("max_usd: a period_budget needs max_usd or max_tokens")
    if spec.action == "block" and (spec.timeout_s is not None or spec.on_timeout is not None):
        field = "timeout_s" if spec.timeout_s is not None else "on_timeout"
        raise InvalidInput(f"{field}: applies only to policies whose action is hold")


def policy_document(spec: PolicySpec) -> dict[str, Any]:
    """The policy's own settings (`spec` column): the fields of its kind, and its hold settings."""
    values = spec.model_dump()
    document = {field: values[field] for field in KIND_FIELDS[spec.kind]}
    if spec.action == "hold":
        document["timeout_s"] = values["timeout_s"] or DEFAULT_HOLD_TIMEOUT_S
        document["on_timeout"] = values["on_timeout"] or "deny"
    return document


class PolicyOut(BaseModel):
    id: str
    name: str
    kind: PolicyKind
    enabled: bool
    action: Action
    project_id: str | None
    trace_name: str | None
    max_usd: float | None = None
    max_tokens: int | None = None
    max_steps: int | None = None
    period: Literal["day", "month"] | None = None
    max_repeats: int | None = None
    tools: list[str] | None = None
    timeout_s: int | None = None
    on_timeout: OnTimeout | None = None
    created_at: datetime
    updated_at: datetime


class CheckRequest(BaseModel):
    """What the SDK sends after recording each step; fields it may add later are ignored."""

    model_config = ConfigDict(extra="ignore")

    run_id: str = Field(min_length=1, max_length=128, description="The run (the SDK's trace id)")
    proposed_tokens: int = Field(0, ge=0, description="Tokens of the step just recorded")
    proposed_usd: Usd = Field(0.0, description="Cost of the step just recorded, in dollars")
    project_id: str | None = Field(None, max_length=256)
    trace_id: str | None = Field(None, max_length=128)
    span_id: str | None = Field(None, max_length=128, description="Counts the step once, however often sent")
    tool_name: str | None = Field(None, max_length=512)
    tool_args_hash: str | None = Field(None, max_length=128)


class RunUsageOut(BaseModel):
    steps: int
    tokens: int
    usd: float


class CheckResult(BaseModel):
    verdict: Verdict
    reason: str | None = None
    policy_id: str | None = None
    hold_id: str | None = None
    usage: RunUsageOut | None = Field(None, description="The run's usage as counted so far")


class HoldOut(BaseModel):
    id: str
    status: HoldStatus
    verdict: Verdict = Field(description="What applies now: hold while pending, else allow or block")
    policy_id: str
    policy_name: str
    kind: PolicyKind
    run_id: str
    trace_id: str | None
    span_id: str | None
    tool_name: str | None
    tool_args_hash: str | None
    reason: str
    on_timeout: OnTimeout
    note: str | None
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None


class HoldDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(None, max_length=2000)


class BreachOut(BaseModel):
    trace_id: str
    policy_id: str
    policy_name: str
    kind: PolicyKind
    action: Action
    reason: str
    created_at: datetime


class QuotaOut(BaseModel):
    month: str = Field(description="The calendar month counted (UTC), `2026-12`")
    traces: int = Field(description="Traces recorded this month")
    limit: int | None = Field(description="The plan's monthly traces; null when unlimited")
    resets_at: str = Field(description="The day the count starts again")
