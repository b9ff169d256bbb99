"""The check as plain SQL in one transaction of one connection: on SQLite the writer's
(`Database.write_sqlite_direct`), on PostgreSQL a pooled asyncpg connection (`on_postgres`).

Through sessions the check took a read session for the policies' revision, then a write session,
and paid the ORM's cost on each of its statements. Here the revision read, the counting and the
holds run as plain statements (the counting ones are `usage.count`'s), so the counters stay
atomic across processes (SQLite's file lock, PostgreSQL's row locks) and the verdicts are the same.
The SQL is written once, for SQLite; `_postgres_sql` rewrites its placeholders.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol

import orjson
from sqlalchemy.util import await_only, greenlet_spawn

from retrace_server.db.engine import Database, json_text
from retrace_server.db.types import sqlite_timestamp
from retrace_server.enforcement import holds
from retrace_server.enforcement.rules import (
    Rule,
    RuleSet,
    Trip,
    Usage,
    period_scopes,
    scope_identity,
    tool_key,
    trips,
)
from retrace_server.enforcement.schemas import HoldStatus, Verdict

_REVISION = "SELECT revision, enabled FROM enforcement_policy_sets WHERE user_id = ?"
_POLICIES = (
    "SELECT id, name, kind, action, project_id, trace_name, spec FROM enforcement_policies "
    "WHERE user_id = ? AND enabled ORDER BY created_at, id"
)
_TRACE = "SELECT name, project_id FROM traces WHERE id = ? AND user_id = ?"
_REMEMBER_SPAN = (
    "INSERT INTO enforcement_run_spans (user_id, run_id, span_id, tokens, usd) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT DO NOTHING RETURNING span_id"
)
_COUNTED_SPAN = (
    "SELECT tokens, usd FROM enforcement_run_spans WHERE user_id = ? AND run_id = ? AND span_id = ?"
)
_GROW_SPAN = (
    "UPDATE enforcement_run_spans SET tokens = ?, usd = ? WHERE user_id = ? AND run_id = ? AND span_id = ?"
)
_ADD_TO_RUN = (
    "INSERT INTO enforcement_runs (user_id, run_id, steps, tokens, usd, scopes, updated_at) "
    "VALUES (?, ?, ?, ?, ?, '[]', ?) ON CONFLICT (user_id, run_id) DO UPDATE SET "
    "steps = enforcement_runs.steps + excluded.steps, tokens = enforcement_runs.tokens + excluded.tokens, "
    "usd = enforcement_runs.usd + excluded.usd, updated_at = excluded.updated_at "
    "RETURNING steps, tokens, usd, scopes"
)
_RUN_SCOPES = "UPDATE enforcement_runs SET scopes = ? WHERE user_id = ? AND run_id = ?"
_ADD_TOOL_CALL = (
    "INSERT INTO enforcement_tool_counts (user_id, run_id, tool_key, count) VALUES (?, ?, ?, 1) "
    "ON CONFLICT (user_id, run_id, tool_key) DO UPDATE SET "
    "count = enforcement_tool_counts.count + excluded.count RETURNING count"
)
_TOOL_COUNT = "SELECT count FROM enforcement_tool_counts WHERE user_id = ? AND run_id = ? AND tool_key = ?"
_ADD_TO_PERIOD = (
    "INSERT INTO enforcement_period_usage (user_id, scope, tokens, usd, updated_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (user_id, scope) DO UPDATE SET tokens = enforcement_period_usage.tokens + excluded.tokens, "
    "usd = enforcement_period_usage.usd + excluded.usd, updated_at = excluded.updated_at "
    "RETURNING tokens, usd"
)
_LATEST_HOLD = (
    "SELECT id, status, expires_at, on_timeout FROM enforcement_holds "
    "WHERE user_id = ? AND policy_id = ? AND run_id = ?{} ORDER BY created_at DESC, id DESC LIMIT 1"
)
_HOLD_OF_RUN = _LATEST_HOLD.format("")
_HOLD_OF_SPAN = _LATEST_HOLD.format(" AND span_id = ?")
# `IS`: a call without arguments hash matches holds without one, as `Hold.tool_args_hash == None` did.
_HOLD_OF_CALL = _LATEST_HOLD.format(" AND span_id IS NULL AND tool_name IS ? AND tool_args_hash IS ?")
_NEW_HOLD = (
    "INSERT INTO enforcement_holds (id, user_id, policy_id, policy_name, kind, run_id, trace_id, span_id, "
    "tool_name, tool_args_hash, reason, status, on_timeout, note, created_at, expires_at, decided_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, NULL, ?, ?, NULL)"
)


class Rows(Protocol):
    def fetchall(self) -> Sequence[Sequence[Any]]: ...


class Connection(Protocol):
    """What the check needs of a connection: `sqlite3.Connection` has it."""

    def execute(self, sql: str, parameters: Sequence[Any], /) -> Rows: ...


Timestamp = Callable[[datetime], Any]
"""A moment as the database takes it: ISO text on SQLite, the datetime itself on PostgreSQL."""


@dataclass(frozen=True)
class Step:
    """One check, as the SDK sent it."""

    user_id: str
    run_id: str
    trace_id: str
    span_id: str | None
    project_id: str | None
    tool_name: str | None
    tool_args_hash: str | None
    tokens: int
    usd: float


@dataclass(frozen=True)
class Outcome:
    """What the check found: `rules` as the revision read left them (None: no enabled policy);
    `counted` when a policy applied; the trip that decided a block or hold, with its hold."""

    rules: RuleSet | None
    counted: Usage | None = None
    verdict: Verdict = "allow"
    trip: Trip | None = None
    hold_id: str | None = None
    hold_status: HoldStatus | None = None


@dataclass(frozen=True)
class _HoldRow:
    status: str
    expires_at: datetime
    on_timeout: str


def check(
    connection: Connection,
    *,
    step: Step,
    cached: RuleSet | None,
    now: datetime,
    timestamp: Timestamp = sqlite_timestamp,
) -> Outcome:
    """Runs inside the caller's transaction. `cached`: the rules this process holds for the
    user, used when they are still at the user's revision (read here, in every process)."""
    row = connection.execute(_REVISION, (step.user_id,)).fetchall()
    if not row or row[0][1] == 0:
        return Outcome(None)
    revision = row[0][0]
    rules = (
        cached if cached is not None and cached.revision == revision else _load(connection, step, revision)
    )
    trace_name, trace_project = None, None
    if rules.needs_trace_name or (rules.needs_project and not step.project_id):
        trace = connection.execute(_TRACE, (step.trace_id, step.user_id)).fetchall()
        if trace:
            trace_name, trace_project = trace[0]
    applicable = rules.applicable(project_id=step.project_id or trace_project, trace_name=trace_name)
    if not applicable:
        return Outcome(rules)
    key = tool_key(step.tool_name, step.tool_args_hash) if step.tool_name else None
    scopes = period_scopes(applicable, now)
    counted = _count(connection, step, key=key, scopes=scopes, updated_at=timestamp(now))
    found = trips(applicable, counted, tool_names=[step.tool_name] if step.tool_name else [], now=now)
    for trip in found:
        if trip.rule.action == "block":
            return Outcome(rules, counted, "block", trip)
    for trip in found:
        verdict, hold_id, status = _resolve(connection, step, trip, now, timestamp)
        if verdict != "allow":
            return Outcome(rules, counted, verdict, trip, hold_id, status)
    return Outcome(rules, counted)


def _load(connection: Connection, step: Step, revision: int) -> RuleSet:
    rows = connection.execute(_POLICIES, (step.user_id,)).fetchall()
    return RuleSet(
        revision=revision,
        rules=tuple(
            Rule.of(id, name, kind, action, project, trace_name, _json(spec))
            for id, name, kind, action, project, trace_name, spec in rows
        ),
    )


def _json(value: Any) -> Any:
    """A JSON column's value: SQLite gives its text, asyncpg (with SQLAlchemy's codec) the value."""
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def _count(
    connection: Connection, step: Step, *, key: str | None, scopes: list[str], updated_at: Any
) -> Usage:
    """`usage.count` for one span: the span once, the run, the tool key and the period scopes."""
    user_id, run_id, span_id = step.user_id, step.run_id, step.span_id
    new = True
    tokens, usd = step.tokens, step.usd
    if (
        span_id is not None
        and not connection.execute(
            _REMEMBER_SPAN, (user_id, run_id, span_id, step.tokens, step.usd)
        ).fetchall()
    ):
        new = False
        before = connection.execute(_COUNTED_SPAN, (user_id, run_id, span_id)).fetchall()
        counted_tokens, counted_usd = before[0] if before else (0, 0.0)
        tokens, usd = max(0, step.tokens - counted_tokens), max(0.0, step.usd - counted_usd)
        if tokens or usd:
            connection.execute(
                _GROW_SPAN,
                (max(counted_tokens, step.tokens), max(counted_usd, step.usd), user_id, run_id, span_id),
            )
    run_steps, run_tokens, run_usd, run_scopes = connection.execute(
        _ADD_TO_RUN, (user_id, run_id, 1 if new else 0, tokens, usd, updated_at)
    ).fetchall()[0]
    tool_counts: dict[str, int] = {}
    if key is not None:
        statement = _ADD_TOOL_CALL if new else _TOOL_COUNT
        calls = connection.execute(statement, (user_id, run_id, key)).fetchall()
        if calls:
            tool_counts[key] = calls[0][0]
    periods: dict[str, tuple[int, float]] = {}
    if scopes:
        counted_scopes = set(_json(run_scopes) or ())
        for scope in dict.fromkeys(scopes):
            counted_before = scope_identity(scope) in counted_scopes
            period = connection.execute(
                _ADD_TO_PERIOD,
                (
                    user_id,
                    scope,
                    tokens if counted_before else run_tokens,
                    usd if counted_before else run_usd,
                    updated_at,
                ),
            ).fetchall()[0]
            periods[scope] = (period[0], period[1])
        identities = {scope_identity(scope) for scope in periods}
        if not counted_scopes.issuperset(identities):
            connection.execute(_RUN_SCOPES, (json_text(sorted(counted_scopes | identities)), user_id, run_id))
    return Usage(steps=run_steps, tokens=run_tokens, usd=run_usd, periods=periods, tool_counts=tool_counts)


def _resolve(
    connection: Connection, step: Step, trip: Trip, now: datetime, timestamp: Timestamp
) -> tuple[Verdict, str, HoldStatus]:
    """The verdict for a tripped hold policy: its hold's, once one exists, or a new pending hold.

    A tool approval asks about each call (its span); a budget or loop policy with `action: hold`
    asks once per run, and an approval releases the run from that policy.
    """
    rule = trip.rule
    per_call = rule.kind == "tool_approval"
    head = (step.user_id, rule.id, step.run_id)
    if per_call and step.span_id is not None:
        latest = connection.execute(_HOLD_OF_SPAN, (*head, step.span_id)).fetchall()
    elif per_call:
        latest = connection.execute(_HOLD_OF_CALL, (*head, step.tool_name, step.tool_args_hash)).fetchall()
    else:
        latest = connection.execute(_HOLD_OF_RUN, head).fetchall()
    if latest:
        hold_id, status, expires_at, on_timeout = latest[0]
        expires = expires_at if isinstance(expires_at, datetime) else datetime.fromisoformat(expires_at)
        existing = _HoldRow(status, expires, on_timeout)
        if holds.answers_again(existing, per_call=per_call, span_id=step.span_id, now=now):
            return holds.verdict_of(existing, now), hold_id, holds.current_status(existing, now)
    hold_id = str(uuid.uuid4())
    connection.execute(
        _NEW_HOLD,
        (
            hold_id,
            step.user_id,
            rule.id,
            rule.name,
            rule.kind,
            step.run_id,
            step.trace_id,
            step.span_id,
            step.tool_name,
            step.tool_args_hash,
            trip.reason,
            rule.on_timeout,
            timestamp(now),
            timestamp(now + timedelta(seconds=rule.timeout_s)),
        ),
    )
    return "hold", hold_id, "pending"


async def on_postgres(db: Database, *, step: Step, cached: RuleSet | None, now: datetime) -> Outcome:
    """`check` in one transaction of a pooled asyncpg connection: each statement one round trip,
    with no ORM between (the check's code is synchronous; a greenlet lets it await asyncpg).

    The commit does not wait for the log's flush to disk (2 ms and more here, most of a check),
    unless the check made a person's decision pending: a crash in the moment after may forget
    a counted step, which the ingest backstop counts again when the step's span is stored (it
    counts each span once), but must not forget a hold the agent waits on.
    """
    async with db.engine.connect() as pooled:
        driver = (await pooled.get_raw_connection()).driver_connection
        assert driver is not None
        async with driver.transaction():
            await driver.execute("SET LOCAL synchronous_commit TO OFF")
            outcome: Outcome = await greenlet_spawn(
                check, _Postgres(driver), step=step, cached=cached, now=now, timestamp=_as_is
            )
            if outcome.verdict == "hold":
                await driver.execute("SET LOCAL synchronous_commit TO ON")
            return outcome


def _as_is(moment: datetime) -> datetime:
    return moment


@dataclass(frozen=True)
class _Fetched:
    rows: list[Any]

    def fetchall(self) -> list[Any]:
        return self.rows


@dataclass(frozen=True)
class _Postgres:
    """A `Connection` over asyncpg, for code running in `greenlet_spawn`."""

    driver: Any

    def execute(self, sql: str, parameters: Sequence[Any], /) -> _Fetched:
        return _Fetched(await_only(self.driver.fetch(_postgres_sql(sql), *parameters)))


@lru_cache(maxsize=64)
def _postgres_sql(sql: str) -> str:
    """SQLite's statement for PostgreSQL: numbered placeholders, `IS ?` as a null-safe equality."""
    pieces = sql.replace(" IS ?", " IS NOT DISTINCT FROM ?").split("?")
    return "".join(f"{piece}${n}" for n, piece in enumerate(pieces[:-1], start=1)) + pieces[-1]
