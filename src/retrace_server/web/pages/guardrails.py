"""`/guardrails`: the user's policies (create, enable or disable, delete), the holds waiting for a
decision (approve, deny), and the runs that broke a policy lately."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from retrace_server.enforcement import holds
from retrace_server.enforcement import service as enforcement
from retrace_server.enforcement.schemas import KIND_FIELDS, POLICY_KINDS
from retrace_server.errors import InvalidInput
from retrace_server.pagination import Page
from retrace_server.web.auth import SessionDep, checked_form
from retrace_server.web.formatting import DASH, money
from retrace_server.web.sessions import SignedIn
from retrace_server.web.templating import render

router = APIRouter(include_in_schema=False)

KIND_LABELS = {
    "run_budget": "Run budget",
    "period_budget": "Period budget",
    "tool_loop": "Tool loop",
    "tool_deny": "Tool deny",
    "tool_approval": "Tool approval",
}
KIND_HINTS = {
    "run_budget": "Stops (or holds) one run past a spend, token or step ceiling.",
    "period_budget": "Caps the spend of all runs in a day or a month.",
    "tool_loop": "Catches a run calling one tool with the same arguments again and again.",
    "tool_deny": "Refuses the tools named.",
    "tool_approval": "Asks a person before the tools named run.",
}
NOTICES = {
    "created": "Policy created.",
    "enabled": "Policy enabled.",
    "disabled": "Policy disabled.",
    "deleted": "Policy deleted.",
    "approved": "Approved: the held action goes ahead.",
    "denied": "Denied: the held action is blocked.",
}
_INTEGERS = ("max_tokens", "max_steps", "max_repeats", "timeout_s")
_NUMBERS = ("max_usd",)


def limits(policy: dict[str, Any]) -> str:
    """What the policy allows, in a few words."""
    parts = []
    if policy.get("period"):
        parts.append(f"per {policy['period']}")
    if policy.get("max_usd") is not None:
        parts.append(f"≤ {money(policy['max_usd'])}")
    if policy.get("max_tokens") is not None:
        parts.append(f"≤ {policy['max_tokens']:,} tokens")
    if policy.get("max_steps") is not None:
        parts.append(f"≤ {policy['max_steps']:,} steps")
    if policy.get("max_repeats") is not None:
        parts.append(f"one call ≤ {policy['max_repeats']:,} times")
    if policy.get("tools"):
        parts.append(", ".join(policy["tools"]))
    return " · ".join(parts) or DASH


def _value(field: str, raw: str) -> Any:
    """A form value as the policy's JSON has it; what does not parse is passed on for the
    policy's own validation to name."""
    raw = raw.strip()
    try:
        if field in _INTEGERS:
            return int(raw)
        if field in _NUMBERS:
            return float(raw)
    except ValueError:
        return raw
    if field == "tools":
        return [tool.strip() for tool in raw.replace("\n", ",").split(",") if tool.strip()]
    return raw


def policy_document(fields: dict[str, str]) -> dict[str, Any]:
    """The create body of the policy form: the shared fields and those of the chosen kind
    (`<kind>-<field>`, so that each kind's fieldset keeps its own values)."""
    kind = fields.get("kind", "")
    if kind not in POLICY_KINDS:
        raise InvalidInput("kind: choose one of " + ", ".join(POLICY_KINDS))
    document: dict[str, Any] = {"kind": kind, "name": fields.get("name", "").strip()}
    for field in ("project_id", "trace_name"):
        if fields.get(field, "").strip():
            document[field] = fields[field].strip()
    if kind != "tool_approval":
        document["action"] = fields.get("action", "block")
    for field in KIND_FIELDS[kind]:
        raw = fields.get(f"{kind}-{field}", "")
        if raw.strip():
            document[field] = _value(field, raw)
    if document.get("action", "hold") == "hold":
        for field in ("timeout_s", "on_timeout"):
            if fields.get(field, "").strip():
                document[field] = _value(field, fields[field])
    return document


async def _page(
    request: Request,
    signed_in: SignedIn,
    *,
    notice: str | None = None,
    error: str | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    db, user_id = request.app.state.db, signed_in.user.id
    policies, policy_total = await enforcement.list_policies(db, user_id=user_id, page=Page(100, 0))
    pending, pending_total = await holds.list_holds(db, user_id=user_id, page=Page(50, 0), status="pending")
    decided, _ = await holds.list_holds(db, user_id=user_id, page=Page(10, 0))
    breaches, breach_total = await enforcement.list_breaches(db, user_id=user_id, page=Page(20, 0))
    return render(
        request,
        "guardrails.html",
        status=status,
        policies=[{**policy, "limits": limits(policy)} for policy in policies],
        policy_total=policy_total,
        pending=pending,
        pending_total=pending_total,
        decided=[hold for hold in decided if hold["status"] != "pending"],
        breaches=breaches,
        breach_total=breach_total,
        kinds=KIND_LABELS,
        hints=KIND_HINTS,
        notice=notice,
        error=error,
        form=form or {"kind": "run_budget", "action": "block"},
    )


@router.get("/guardrails")
async def guardrails_page(request: Request, signed_in: SessionDep, done: str = "") -> Response:
    return await _page(request, signed_in, notice=NOTICES.get(done))


@router.post("/guardrails/policies")
async def create_policy(request: Request, signed_in: SessionDep) -> Response:
    fields = await checked_form(request, signed_in)
    try:
        await enforcement.create(
            request.app.state.db, user_id=signed_in.user.id, document=policy_document(fields)
        )
    except InvalidInput as exc:
        # The form comes back as it was sent, with what to correct.
        return await _page(request, signed_in, error=exc.message, form=fields, status=400)
    return RedirectResponse("/guardrails?done=created", status_code=303)


@router.post("/guardrails/policies/{policy_id}/enabled")
async def enable_policy(policy_id: str, request: Request, signed_in: SessionDep) -> Response:
    fields = await checked_form(request, signed_in)
    enabled = fields.get("enabled") == "true"
    await enforcement.update(
        request.app.state.db, user_id=signed_in.user.id, policy_id=policy_id, changes={"enabled": enabled}
    )
    return RedirectResponse(f"/guardrails?done={'enabled' if enabled else 'disabled'}", status_code=303)


@router.post("/guardrails/policies/{policy_id}/delete")
async def delete_policy(policy_id: str, request: Request, signed_in: SessionDep) -> Response:
    await checked_form(request, signed_in)
    await enforcement.delete(request.app.state.db, user_id=signed_in.user.id, policy_id=policy_id)
    return RedirectResponse("/guardrails?done=deleted", status_code=303)


@router.post("/guardrails/holds/{hold_id}/{decision}")
async def decide_hold(hold_id: str, decision: str, request: Request, signed_in: SessionDep) -> Response:
    fields = await checked_form(request, signed_in)
    if decision not in ("approve", "deny"):
        raise InvalidInput("A hold is approved or denied")
    note = fields.get("note", "").strip()[:2000] or None
    await holds.decide(
        request.app.state.db,
        user_id=signed_in.user.id,
        hold_id=hold_id,
        approve=decision == "approve",
        note=note,
    )
    done = "approved" if decision == "approve" else "denied"
    return RedirectResponse(f"/guardrails?done={done}", status_code=303)
