"""Guardrails: policies, the check on the agent's hot path, and the review of what ingestion stored."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from retrace_server.db import faults
from retrace_server.db.engine import Database
from retrace_server.db.types import utcnow
from retrace_server.db.upsert import insert_for
from retrace_server.enforcement import catalog, direct_check, holds, usage
from retrace_server.enforcement.models import Policy, PolicyBreach, ToolCount
from retrace_server.enforcement.rules import (
    Rule,
    RuleSet,
    Trip,
    Usage,
    hash_tool_args,
    period_scopes,
    tool_key,
    trips,
)
from retrace_server.enforcement.schemas import (
    KIND_FIELDS,
    CheckRequest,
    parse_policy,
    policy_document,
)
from retrace_server.errors import InvalidInput, NotFound
from retrace_server.ingest import CommittedHook, TraceWrite, WriteOutcome
from retrace_server.pagination import Page
from retrace_server.traces import answers
from retrace_server.traces.models import Span, Trace

logger = logging.getLogger("retrace_server.enforcement")

SCOPE_FIELDS = ("name", "enabled", "project_id", "trace_name")

# --- policies ---------------------------------------------------------------------------------


def policy_dict(policy: Policy) -> dict[str, Any]:
    return {
        "id": policy.id,
        "name": policy.name,
        "kind": policy.kind,
        "enabled": policy.enabled,
        "action": policy.action,
        "project_id": policy.project_id,
        "trace_name": policy.trace_name,
        **{field: None for fields in KIND_FIELDS.values() for field in fields},
        "timeout_s": None,
        "on_timeout": None,
        **(policy.spec or {}),
        "created_at": policy.created_at,
        "updated_at": policy.updated_at,
    }


def _editable(policy: Policy) -> dict[str, Any]:
    """The policy as a create body, which a PATCH changes and validates again."""
    return {
        "kind": policy.kind,
        "name": policy.name,
        "enabled": policy.enabled,
        "project_id": policy.project_id,
        "trace_name": policy.trace_name,
        "action": policy.action,
        **(policy.spec or {}),
    }


def _apply(policy: Policy, document: Any, *, now: datetime) -> None:
    spec = parse_policy(document)
    policy.name = spec.name
    policy.kind = spec.kind
    policy.enabled = spec.enabled
    policy.action = spec.action
    policy.project_id = spec.project_id
    policy.trace_name = spec.trace_name
    policy.spec = policy_document(spec)
    policy.updated_at = now


async def create(db: Database, *, user_id: str, document: Any) -> dict[str, Any]:
    now = utcnow()
    policy = Policy(id=str(uuid.uuid4()), user_id=user_id, created_at=now)
    _apply(policy, document, now=now)
    async with db.write() as session:
        session.add(policy)
        await session.flush()
        await catalog.bump_revision(session, db.dialect, user_id=user_id)
    catalog.forget(user_id)
    return policy_dict(policy)


async def _owned(session: AsyncSession, *, user_id: str, policy_id: str) -> Policy:
    policy = (
        await session.execute(select(Policy).where(Policy.id == policy_id, Policy.user_id == user_id))
    ).scalar_one_or_none()
    if policy is None:
        raise NotFound("Policy")
    return policy


async def get(db: Database, *, user_id: str, policy_id: str) -> dict[str, Any]:
    async with db.read() as session:
        return policy_dict(await _owned(session, user_id=user_id, policy_id=policy_id))


async def list_policies(
    db: Database,
    *,
    user_id: str,
    page: Page,
    kind: str | None = None,
    enabled: bool | None = None,
    project_id: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """The user's policies in the order they apply (oldest first)."""
    conditions: list[Any] = [Policy.user_id == user_id]
    if kind is not None:
        conditions.append(Policy.kind == kind)
    if enabled is not None:
        conditions.append(Policy.enabled.is_(enabled))
    if project_id is not None:
        conditions.append(Policy.project_id == project_id)
    async with db.read() as session:
        total = int(
            (await session.execute(select(func.count()).select_from(Policy).where(*conditions))).scalar_one()
        )
        rows = await session.execute(
            select(Policy)
            .where(*conditions)
            .order_by(Policy.created_at, Policy.id)
            .limit(page.limit)
            .offset(page.offset)
        )
        return [policy_dict(policy) for policy in rows.scalars()], total


async def update(db: Database, *, user_id: str, policy_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    """Changes the fields named (null restores a field's default) and validates the whole policy again.

    Changing `kind` keeps only the name, `enabled` and the scope (`project_id`, `trace_name`).
    Turning `action` to block drops the hold settings unless the change names them.
    """
    now = utcnow()
    async with db.write() as session:
        policy = await _owned(session, user_id=user_id, policy_id=policy_id)
        document = _editable(policy)
        if "kind" in changes and changes["kind"] != policy.kind:
            document = {field: document[field] for field in SCOPE_FIELDS}
        if changes.get("action") == "block":
            for field in ("timeout_s", "on_timeout"):
                if field not in changes:
                    document.pop(field, None)
        for field, value in changes.items():
            if value is None:
                document.pop(field, None)
            else:
                document[field] = value
        _apply(policy, document, now=now)
        await session.flush()
        await catalog.bump_revision(session, db.dialect, user_id=user_id)
        answer = policy_dict(policy)
    catalog.forget(user_id)
    return answer


async def delete(db: Database, *, user_id: str, policy_id: str) -> None:
    async with db.write() as session:
        policy = await _owned(session, user_id=user_id, policy_id=policy_id)
        await session.delete(policy)
        await session.flush()
        await catalog.bump_revision(session, db.dialect, user_id=user_id)
    catalog.forget(user_id)


# --- the check --------------------------------------------------------------------------------


def _allow(reason: str | None = None, *, counted: Usage | None = None) -> dict[str, Any]:
    return {
        "verdict": "allow",
        "reason": reason,
        "policy_id": None,
        "hold_id": None,
        "usage": _usage(counted),
    }


def _usage(counted: Usage | None) -> dict[str, Any] | None:
    if counted is None:
        return None
    return {"steps": counted.steps, "tokens": counted.tokens, "usd": round(counted.usd, 10)}


async def check(db: Database, *, user_id: str, request: CheckRequest) -> dict[str, Any]:
    """Counts the step into its run and answers allow, block or hold.

    Never refuses a run because of a fault here: the answer is then `allow`, the reason is logged,
    and the SDK's own limits still apply.
    """
    try:
        return await _check(db, user_id=user_id, request=request)
    except Exception as exc:
        logger.exception("Enforcement check for run %s failed; answering allow", request.run_id)
        return _allow(
            f"Enforcement is unavailable ({type(exc).__name__}); the SDK's local limits still apply"
        )


async def _check(db: Database, *, user_id: str, request: CheckRequest) -> dict[str, Any]:
    known, rules = catalog.recent_rules(database=db.url, user_id=user_id)
    if known and rules is None:
        # A user without policies a moment ago: no database turn (on SQLite, none behind ingest's
        # writes); a policy made in another process applies here within that moment.
        return _allow()
    step = direct_check.Step(
        user_id=user_id,
        run_id=request.run_id,
        trace_id=request.trace_id or request.run_id,
        span_id=request.span_id,
        project_id=request.project_id,
        tool_name=request.tool_name,
        tool_args_hash=request.tool_args_hash,
        tokens=request.proposed_tokens,
        usd=request.proposed_usd,
    )
    cached = catalog.cached(database=db.url, user_id=user_id)
    now = utcnow()
    if db.is_sqlite:
        # Urgent: an agent waits on it, and its fraction of a millisecond of SQLite costs less
        # than the hand-over to the writer thread and back, or a place behind queued ingestion.
        outcome = await db.write_sqlite_direct(
            functools.partial(direct_check.check, step=step, cached=cached, now=now), urgent=True
        )
    else:
        outcome = await direct_check.on_postgres(db, step=step, cached=cached, now=now)
    catalog.read(database=db.url, user_id=user_id, rules=outcome.rules)
    trip, counted = outcome.trip, outcome.counted
    if trip is None or counted is None:
        return _allow(counted=counted)
    if outcome.hold_id is None:
        return _answer("block", trip.reason, trip.rule, None, counted)
    if outcome.verdict == "hold":
        reason = f"{trip.reason}; waiting for a person (hold {outcome.hold_id})"
    else:
        reason = f"{trip.reason}; the hold was {outcome.hold_status}"
    return _answer(outcome.verdict, reason, trip.rule, outcome.hold_id, counted)


def _answer(verdict: str, reason: str, rule: Rule, hold_id: str | None, counted: Usage) -> dict[str, Any]:
    return {
        "verdict": verdict,
        "reason": reason,
        "policy_id": rule.id,
        "hold_id": hold_id,
        "usage": _usage(counted),
    }


# --- the ingest backstop ----------------------------------------------------------------------


@dataclass(frozen=True)
class Breach:
    """The block policy a stored trace broke: the stream halts its run with `reason`."""

    trace_id: str
    policy_id: str
    policy_name: str
    kind: str
    reason: str


async def review_stored(db: Database, *, user_id: str, writes: Sequence[TraceWrite]) -> dict[str, Breach]:
    """Counts what `writes` stored against the user's policies and marks the traces that broke one.

    Call it after the writes are stored (committed), with the writes that succeeded. Nothing is
    refused or dropped here: spans that break a policy stay stored, and the trace gets a breach
    (`GET /api/v1/enforcement/breaches`). Block policies are judged on every write; policies that
    ask a person (`action: hold`, tool approvals) are judged once the trace has ended, against
    the holds decided for it. Spans the SDK's check already counted are not counted again.

    Answers, for each of these traces that has broken a block policy (now or earlier), its first
    such breach: the stream sends that run `{"type": "halt", "data": {"reason": breach.reason}}`.
    Never raises: a fault is logged and answers {}.
    """
    try:
        known, rules = catalog.recent_rules(database=db.url, user_id=user_id)
        if not known:
            async with db.read() as session:
                rules = await catalog.rules_for(session, database=db.url, user_id=user_id)
        if rules is None:
            return {}
        written: dict[str, set[str]] = {}
        for write in writes:
            ids = written.setdefault(write.trace_id, set())
            ids.update(str(part.values["id"]) for part in write.spans if part.values.get("id") is not None)
        halted: dict[str, Breach] = {}
        for trace_id, span_ids in written.items():
            breach = await _review_trace(db, rules, user_id=user_id, trace_id=trace_id, span_ids=span_ids)
            if breach is not None:
                halted[trace_id] = breach
        return halted
    except Exception as exc:
        if faults.surface(exc) is None:  # an outage is logged once, by `faults`
            logger.exception("Enforcement review of stored traces failed for user %s", user_id)
        return {}


_CHUNK = 500


def backstop_hook(db: Database) -> CommittedHook:
    """For `Ingestor.committed_hooks`: every stored write is reviewed (`review_stored`), whatever
    path it came by; a run that broke a block policy gets the note `halt` with the reason, which
    the stream turns into a `halt` frame."""

    async def review(user_id: str, writes: list[TraceWrite], outcomes: list[WriteOutcome]) -> None:
        stored = [write for write, outcome in zip(writes, outcomes, strict=True) if outcome.ok]
        if not stored:
            return
        breaches = await review_stored(db, user_id=user_id, writes=stored)
        for outcome in outcomes:
            breach = breaches.get(outcome.trace_id)
            if breach is not None:
                outcome.notes["halt"] = breach.reason

    return review


async def _review_trace(
    db: Database, rules: RuleSet, *, user_id: str, trace_id: str, span_ids: set[str]
) -> Breach | None:
    now = utcnow()
    async with db.write() as session:
        trace = (
            await session.execute(
                select(Trace.name, Trace.status, Trace.project_id).where(
                    Trace.id == trace_id, Trace.user_id == user_id
                )
            )
        ).first()
        if trace is None:
            return None
        applicable = rules.applicable(project_id=trace.project_id, trace_name=trace.name)
        if not applicable:
            return None
        stored = await _stored_spans(session, user_id=user_id, trace_id=trace_id, span_ids=sorted(span_ids))
        counted = await usage.count(
            session,
            db.dialect,
            user_id=user_id,
            run_id=trace_id,
            spans=[_span_usage(span) for span in stored],
            scopes=period_scopes(applicable, now),
            tool_keys=[],
            now=now,
        )
        tool_names = [span.name for span in stored if span.span_type == "tool_call"]
        blocking = [r for r in applicable if r.action == "block"]
        found = trips(blocking, counted, tool_names=tool_names, now=now)
        if trace.status != "running":
            waiting = [r for r in applicable if r.action == "hold"]
            found += await _unapproved(session, waiting, counted, user_id=user_id, trace_id=trace_id, now=now)
        await _mark(session, db.dialect, found, user_id=user_id, trace_id=trace_id, now=now)
        first = (
            await session.execute(
                select(PolicyBreach)
                .where(
                    PolicyBreach.user_id == user_id,
                    PolicyBreach.trace_id == trace_id,
                    PolicyBreach.action == "block",
                )
                .order_by(PolicyBreach.created_at, PolicyBreach.policy_id)
                .limit(1)
            )
        ).scalar_one_or_none()
    if first is None:
        return None
    return Breach(trace_id, first.policy_id, first.policy_name, first.kind, first.reason)


async def _stored_spans(
    session: AsyncSession, *, user_id: str, trace_id: str, span_ids: Sequence[str]
) -> list[Any]:
    columns = (
        Span.id,
        Span.span_type,
        Span.name,
        Span.input,
        Span.input_tokens,
        Span.output_tokens,
        Span.cost,
    )
    found: list[Any] = []
    for start in range(0, len(span_ids), _CHUNK):
        rows = await session.execute(
            select(*columns).where(
                Span.trace_id == trace_id,
                Span.user_id == user_id,
                Span.id.in_(span_ids[start : start + _CHUNK]),
            )
        )
        found.extend(rows)
    return found


def _span_usage(span: Any) -> usage.SpanUsage:
    tokens = (span.input_tokens or 0) + (span.output_tokens or 0)
    key = tool_key(span.name, hash_tool_args(span.input)) if span.span_type == "tool_call" else None
    return usage.SpanUsage(span.id, max(0, tokens), max(0.0, span.cost or 0.0), key)


async def _unapproved(
    session: AsyncSession, rules: list[Rule], counted: Usage, *, user_id: str, trace_id: str, now: datetime
) -> list[Trip]:
    """Hold policies the ended run broke without a person letting it (approved, or expired into allow)."""
    if not rules:
        return []
    released = await holds.approved_for_run(session, user_id=user_id, run_id=trace_id)
    tool_spans = (
        await session.execute(
            select(Span.id, Span.name).where(
                Span.trace_id == trace_id, Span.user_id == user_id, Span.span_type == "tool_call"
            )
        )
    ).all()
    tool_counts = {
        row.tool_key: row.calls
        for row in await session.execute(
            select(ToolCount.tool_key, ToolCount.count.label("calls")).where(
                ToolCount.user_id == user_id, ToolCount.run_id == trace_id
            )
        )
    }
    whole_run = Usage(counted.steps, counted.tokens, counted.usd, counted.periods, tool_counts)
    found: list[Trip] = []
    for rule in rules:
        if rule.kind == "tool_approval":
            for span in tool_spans:
                if span.name in rule.tools and not any(
                    hold.policy_id == rule.id
                    and (hold.span_id == span.id or (hold.span_id is None and hold.tool_name == span.name))
                    for hold in released
                ):
                    found.append(
                        Trip(
                            rule,
                            f"Policy {rule.name!r} (tool_approval): tool {span.name!r} ran without approval",
                        )
                    )
                    break
            continue
        broken = trips([rule], whole_run, tool_names=[span.name for span in tool_spans], now=now)
        if broken and not any(hold.policy_id == rule.id for hold in released):
            found.append(broken[0])
    return found


async def _mark(
    session: AsyncSession, dialect: str, found: list[Trip], *, user_id: str, trace_id: str, now: datetime
) -> None:
    if not found:
        return
    rows = [
        {
            "user_id": user_id,
            "trace_id": trace_id,
            "policy_id": trip.rule.id,
            "policy_name": trip.rule.name,
            "kind": trip.rule.kind,
            "action": trip.rule.action,
            "reason": trip.reason,
            "created_at": now,
        }
        for trip in {trip.rule.id: trip for trip in reversed(found)}.values()
    ]
    await session.execute(insert_for(dialect)(PolicyBreach).values(rows).on_conflict_do_nothing())


# --- breaches ---------------------------------------------------------------------------------


def _breach_dict(breach: PolicyBreach) -> dict[str, Any]:
    return {
        "trace_id": breach.trace_id,
        "policy_id": breach.policy_id,
        "policy_name": breach.policy_name,
        "kind": breach.kind,
        "action": breach.action,
        "reason": breach.reason,
        "created_at": breach.created_at,
    }


async def list_breaches(
    db: Database, *, user_id: str, page: Page, trace_id: str | None = None, policy_id: str | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Traces marked with the policies they broke, newest first."""
    conditions: list[Any] = [PolicyBreach.user_id == user_id]
    if trace_id is not None:
        conditions.append(PolicyBreach.trace_id == trace_id)
    if policy_id is not None:
        conditions.append(PolicyBreach.policy_id == policy_id)
    async with db.read() as session:
        total = int(
            (
                await session.execute(select(func.count()).select_from(PolicyBreach).where(*conditions))
            ).scalar_one()
        )
        rows = await session.execute(
            select(PolicyBreach)
            .where(*conditions)
            .order_by(PolicyBreach.created_at.desc(), PolicyBreach.trace_id, PolicyBreach.policy_id)
            .limit(page.limit)
            .offset(page.offset)
        )
        return [_breach_dict(b) for b in rows.scalars()], total


async def breaches_for_traces(
    db: Database, *, user_id: str, trace_ids: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """The breaches of each of these traces (absent when none), for trace answers to show."""
    if not trace_ids:
        return {}
    found: dict[str, list[dict[str, Any]]] = {}
    async with db.read() as session:
        for start in range(0, len(trace_ids), _CHUNK):
            rows = await session.execute(
                select(PolicyBreach)
                .where(
                    PolicyBreach.user_id == user_id,
                    PolicyBreach.trace_id.in_(list(trace_ids[start : start + _CHUNK])),
                )
                .order_by(PolicyBreach.created_at, PolicyBreach.policy_id)
            )
            for breach in rows.scalars():
                found.setdefault(breach.trace_id, []).append(_breach_dict(breach))
    return found


def parse_changes(document: Any) -> dict[str, Any]:
    """A PATCH body: a JSON object of the fields to change."""
    if not isinstance(document, dict):
        raise InvalidInput("Request body must be a JSON object")
    if not document:
        raise InvalidInput("body: name at least one field to change")
    return document


def _breaches_sql() -> dict[str, str]:
    table = PolicyBreach.__tablename__
    fields = ", ".join(
        f"'{key}', b.{key}" for key in ("policy_id", "policy_name", "kind", "action", "reason")
    )
    own = "b.user_id = traces.user_id AND b.trace_id = traces.id"
    sqlite = (
        f"(SELECT json_group_array(json(breach)) FROM (SELECT json_object({fields}) AS breach "
        f"FROM {table} b WHERE {own} ORDER BY b.created_at, b.policy_id))"
    )
    postgresql = (
        f"coalesce((SELECT json_agg(json_build_object({fields}) ORDER BY b.created_at, b.policy_id) "
        f"FROM {table} b WHERE {own}), '[]'::json)"
    )
    return {"sqlite": f"json({sqlite})", "postgresql": postgresql}


def register_trace_answers() -> None:
    """The answer of one trace names the policies it broke (`breaches`)."""
    answers.register_field(answers.AnswerField("breaches", _breaches_sql(), in_lists=False))
