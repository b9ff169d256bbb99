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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
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
    inserted = set(
        (
            await session.execute(
                insert_for(dialect)(RunSpan)
                .values(
                    [
                        {
                            "user_id": user_id,
                            "run_id": run_id,
                            "span_id": s.span_id,
                            "tokens": s.tokens,
                            "usd": s.usd,
                        }
                        for s in keyed.values()
                    ]
                )
                .on_conflict_do_nothing()
                .returning(RunSpan.span_id)
            )
        ).scalars()
    )
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
    new, extra_tokens, extra_usd = await _new_and_grown(
        session, dialect, user_id=user_id, run_id=run_id, spans=spans
    )
    steps = len(new)
    tokens = sum(s.tokens for s in new) + extra_tokens
    usd = sum(s.usd for s in new) + extra_usd
    insert = insert_for(dialect)
    run_insert = insert(RunUsage).values(
        user_id=user_id, run_id=run_id, steps=steps, tokens=tokens, usd=usd, scopes=[], updated_at=now
    )
    run = (
        await session.execute(
            run_insert.on_conflict_do_update(
                index_elements=[RunUsage.user_id, RunUsage.run_id],
                set_={
                    "steps": RunUsage.steps + run_insert.excluded.steps,
                    "tokens": RunUsage.tokens + run_insert.excluded.tokens,
                    "usd": RunUsage.usd + run_insert.excluded.usd,
                    "updated_at": run_insert.excluded.updated_at,
                },
            ).returning(RunUsage.steps, RunUsage.tokens, RunUsage.usd, RunUsage.scopes)
        )
    ).one()
    tool_counts = await _count_tools(
        session, insert, user_id=user_id, run_id=run_id, new=new, asked=tool_keys
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
        period_insert = insert(PeriodUsage).values(rows)
        result = await session.execute(
            period_insert.on_conflict_do_update(
                index_elements=[PeriodUsage.user_id, PeriodUsage.scope],
                set_={
                    "tokens": PeriodUsage.tokens + period_insert.excluded.tokens,
                    "usd": PeriodUsage.usd + period_insert.excluded.usd,
                    "updated_at": period_insert.excluded.updated_at,
                },
            ).returning(PeriodUsage.scope, PeriodUsage.tokens, PeriodUsage.usd)
        )
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
    insert: Callable[[Any], Any],
    *,
    user_id: str,
    run_id: str,
    new: Sequence[SpanUsage],
    asked: Sequence[str],
) -> dict[str, int]:
    calls = Counter(s.tool_key for s in new if s.tool_key)
    counts: dict[str, int] = {}
    if calls:
        tool_insert = insert(ToolCount).values(
            [{"user_id": user_id, "run_id": run_id, "tool_key": key, "count": n} for key, n in calls.items()]
        )
        result = await session.execute(
            tool_insert.on_conflict_do_update(
                index_elements=[ToolCount.user_id, ToolCount.run_id, ToolCount.tool_key],
                set_={"count": ToolCount.count + tool_insert.excluded.count},
            ).returning(ToolCount.tool_key, ToolCount.count.label("calls"))
        )
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
