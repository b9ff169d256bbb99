"""Counting a run's usage in the database, so that every server process counts it once.

Each counter moves by one `INSERT ... ON CONFLICT DO UPDATE ... RETURNING` statement inside the
caller's write transaction: on PostgreSQL concurrent writers take turns on the row, on SQLite
writers take turns on the file, and either way no increment is lost.

A span is counted once however many times it is reported (by the SDK's check and again when it
is stored): `enforcement_run_spans` remembers what was counted for it, and a later report adds
only what it has more (a cost the server priced after the check, for instance).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from retrace_server.db.upsert import insert_for
from retrace_server.enforcement.models import PeriodUsage, RunSpan, RunUsage, ToolCount
from retrace_server.enforcement.rules import Usage, scope_identity


@dataclass(frozen=True)
class SpanUsage:
    """One step to count: its span id (None counts it unconditionally), tokens, cost, tool key."""

    span_id: str | None
    tokens: int
    usd: float
    tool_key: str | None = None


@dataclass(frozen=True)
class _Statements:
    """The counting statements of one dialect, built once: their values are bound at execution,
    so the compiled SQL is reused instead of compiled for every step."""

    remember_spans: Any
    add_to_run: Any
    add_tool_calls: Any
    add_to_periods: Any


@lru_cache(maxsize=4)
def _statements(dialect: str) -> _Statements:
    insert = insert_for(dialect)
    runs, spans, tools, periods = (
        RunUsage.__table__,
        RunSpan.__table__,
        ToolCount.__table__,
        PeriodUsage.__table__,
    )
    remember = insert(spans).on_conflict_do_nothing().returning(spans.c.span_id)
    run = insert(runs)
    tool = insert(tools)
    period = insert(periods)
    return _Statements(
        remember_spans=remember,
        add_to_run=run.on_conflict_do_update(
            index_elements=[runs.c.user_id, runs.c.run_id],
            set_={
                "steps": runs.c.steps + run.excluded.steps,
                "tokens": runs.c.tokens + run.excluded.tokens,
                "usd": runs.c.usd + run.excluded.usd,
                "updated_at": run.excluded.updated_at,
            },
        ).returning(runs.c.steps, runs.c.tokens, runs.c.usd, runs.c.scopes),
        add_tool_calls=tool.on_conflict_do_update(
            index_elements=[tools.c.user_id, tools.c.run_id, tools.c.tool_key],
            set_={"count": tools.c.count + tool.excluded.count},
        ).returning(tools.c.tool_key, tools.c.count.label("calls")),
        add_to_periods=period.on_conflict_do_update(
            index_elements=[periods.c.user_id, periods.c.scope],
            set_={
                "tokens": periods.c.tokens + period.excluded.tokens,
                "usd": periods.c.usd + period.excluded.usd,
                "updated_at": period.excluded.updated_at,
            },
        ).returning(periods.c.scope, periods.c.tokens, periods.c.usd),
    )


def _one_or_many(rows: list[dict[str, Any]]) -> dict[str, Any] | list[dict[str, Any]]:
    return rows[0] if len(rows) == 1 else rows


async def _new_and_grown(
    session: AsyncSession, dialect: str, *, user_id: str, run_id: str, spans: Sequence[SpanUsage]
) -> tuple[list[SpanUsage], int, float]:
    """Spans never counted before, and the tokens and cost the others report beyond their count."""
    keyed: dict[str, SpanUsage] = {}
    unkeyed: list[SpanUsage] = []
    for span in spans:
        if span.span_id is None:
            unkeyed.append(span)
            continue
        seen = keyed.get(span.span_id)
        keyed[span.span_id] = span if seen is None else _larger(seen, span)
    if not keyed:
        return unkeyed, 0, 0.0
    rows = [
        {"user_id": user_id, "run_id": run_id, "span_id": s.span_id, "tokens": s.tokens, "usd": s.usd}
        for s in keyed.values()
    ]
    result = await session.execute(_statements(dialect).remember_spans, _one_or_many(rows))
    inserted = set(result.scalars())
    new = unkeyed + [s for span_id, s in keyed.items() if span_id in inserted]
    known = [s for span_id, s in keyed.items() if span_id not in inserted]
    extra_tokens, extra_usd = 0, 0.0
    if known:
        counted = await session.execute(
            select(RunSpan.span_id, RunSpan.tokens, RunSpan.usd)
            .where(
                RunSpan.user_id == user_id,
                RunSpan.run_id == run_id,
                RunSpan.span_id.in_([s.span_id for s in known]),
            )
            .with_for_update()
        )
        before = {row.span_id: (row.tokens, row.usd) for row in counted}
        for span in known:
            tokens, usd = before.get(span.span_id, (0, 0.0))
            grow_tokens, grow_usd = max(0, span.tokens - tokens), max(0.0, span.usd - usd)
            if grow_tokens or grow_usd:
                extra_tokens += grow_tokens
                extra_usd += grow_usd
                await session.execute(
                    update(RunSpan)
                    .where(
                        RunSpan.user_id == user_id, RunSpan.run_id == run_id, RunSpan.span_id == span.span_id
                    )
                    .values(tokens=max(tokens, span.tokens), usd=max(usd, span.usd))
                )
    return new, extra_tokens, extra_usd


def _larger(a: SpanUsage, b: SpanUsage) -> SpanUsage:
    return SpanUsage(a.span_id, max(a.tokens, b.tokens), max(a.usd, b.usd), a.tool_key or b.tool_key)


async def count(
    session: AsyncSession,
    dialect: str,
    *,
    user_id: str,
    run_id: str,
    spans: Sequence[SpanUsage],
    scopes: Sequence[str],
    tool_keys: Sequence[str],
    now: datetime,
) -> Usage:
    """Counts `spans` into the run, its tool counters and the period `scopes` it falls in; returns
    the run's usage with those scopes' spend and the counts of `tool_keys` (plus any tool counted now).

    A scope first seen for this run receives the run's whole usage, so a period budget created
    while a run is under way, or one that applies once the run's name is known, misses nothing
    the run had already used; a run going on past midnight adds only its new usage to the new day.
    """
    statements = _statements(dialect)
    new, extra_tokens, extra_usd = await _new_and_grown(
        session, dialect, user_id=user_id, run_id=run_id, spans=spans
    )
    steps = len(new)
    tokens = sum(s.tokens for s in new) + extra_tokens
    usd = sum(s.usd for s in new) + extra_usd
    run_values = {
        "user_id": user_id,
        "run_id": run_id,
        "steps": steps,
        "tokens": tokens,
        "usd": usd,
        "scopes": [],
        "updated_at": now,
    }
    run = (await session.execute(statements.add_to_run, run_values)).one()
    tool_counts = await _count_tools(
        session, statements, user_id=user_id, run_id=run_id, new=new, asked=tool_keys
    )
    periods: dict[str, tuple[int, float]] = {}
    if scopes:
        counted_scopes = set(run.scopes or ())
        rows = [
            {
                "user_id": user_id,
                "scope": scope,
                "tokens": tokens if scope_identity(scope) in counted_scopes else run.tokens,
                "usd": usd if scope_identity(scope) in counted_scopes else run.usd,
                "updated_at": now,
            }
            for scope in dict.fromkeys(scopes)
        ]
        result = await session.execute(statements.add_to_periods, _one_or_many(rows))
        periods = {row.scope: (row.tokens, row.usd) for row in result}
        identities = {scope_identity(scope) for scope in periods}
        if not counted_scopes.issuperset(identities):
            await session.execute(
                update(RunUsage)
                .where(RunUsage.user_id == user_id, RunUsage.run_id == run_id)
                .values(scopes=sorted(counted_scopes | identities))
            )
    return Usage(steps=run.steps, tokens=run.tokens, usd=run.usd, periods=periods, tool_counts=tool_counts)


async def _count_tools(
    session: AsyncSession,
    statements: _Statements,
    *,
    user_id: str,
    run_id: str,
    new: Sequence[SpanUsage],
    asked: Sequence[str],
) -> dict[str, int]:
    calls = Counter(s.tool_key for s in new if s.tool_key)
    counts: dict[str, int] = {}
    if calls:
        rows = [
            {"user_id": user_id, "run_id": run_id, "tool_key": key, "count": n} for key, n in calls.items()
        ]
        result = await session.execute(statements.add_tool_calls, _one_or_many(rows))
        counts = {row.tool_key: row.calls for row in result}
    missing = [key for key in dict.fromkeys(asked) if key not in counts]
    if missing:
        result = await session.execute(
            select(ToolCount.tool_key, ToolCount.count.label("calls")).where(
                ToolCount.user_id == user_id, ToolCount.run_id == run_id, ToolCount.tool_key.in_(missing)
            )
        )
        counts.update({row.tool_key: row.calls for row in result})
    return counts
