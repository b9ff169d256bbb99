"""A user's enabled policies, kept in memory per process and reloaded when their revision moves.

Every policy change bumps the user's row in `enforcement_policy_sets` in the same transaction, so
one indexed read tells a process whether the rules it holds are current, in every process.

Ingest's backstop review (`recent_rules`) skips even that read for a second after the last one:
it runs on every write, and a change made in another process reaches it a second later at most.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from retrace_server.db.upsert import insert_for
from retrace_server.enforcement.models import Policy, PolicySet
from retrace_server.enforcement.rules import Rule, RuleSet

_MAX_CACHED_USERS = 4096
_cache: OrderedDict[tuple[str, str], RuleSet] = OrderedDict()
# (database, user) -> when `rules_for` last read the user's revision, and what it answered.
_read_at: OrderedDict[tuple[str, str], tuple[float, RuleSet | None]] = OrderedDict()


def recent_rules(*, database: str, user_id: str, max_age_s: float) -> tuple[bool, RuleSet | None]:
    """(True, rules) when `rules_for` read the user's rules in this process within `max_age_s`."""
    read = _read_at.get((database, user_id))
    if read is None or time.monotonic() - read[0] > max_age_s:
        return False, None
    return True, read[1]


def forget(user_id: str) -> None:
    """After a policy change commits here: this process's next read is fresh."""
    for key in [key for key in _read_at if key[1] == user_id]:
        del _read_at[key]


def _remember(key: tuple[str, str], rules: RuleSet | None) -> RuleSet | None:
    _read_at[key] = (time.monotonic(), rules)
    _read_at.move_to_end(key)
    while len(_read_at) > _MAX_CACHED_USERS:
        _read_at.popitem(last=False)
    return rules


def cached(*, database: str, user_id: str) -> RuleSet | None:
    """The rules this process last loaded for the user, current or not: compare their revision."""
    return _cache.get((database, user_id))


def read(*, database: str, user_id: str, rules: RuleSet | None) -> RuleSet | None:
    """Records what a read of the user's revision found without `rules_for`: `rules` at it
    (freshly loaded, or `cached` still current), or None when the user has no enabled policy."""
    key = (database, user_id)
    if rules is not None:
        _store(key, rules)
    return _remember(key, rules)


def _store(key: tuple[str, str], rules: RuleSet) -> None:
    _cache[key] = rules
    _cache.move_to_end(key)
    while len(_cache) > _MAX_CACHED_USERS:
        _cache.popitem(last=False)


async def rules_for(session: AsyncSession, *, database: str, user_id: str) -> RuleSet | None:
    """The user's enabled policies, or None when they have none (the common, cheapest case)."""
    row = (
        await session.execute(
            select(PolicySet.revision, PolicySet.enabled).where(PolicySet.user_id == user_id)
        )
    ).first()
    key = (database, user_id)
    if row is None or row.enabled == 0:
        return _remember(key, None)
    cached = _cache.get(key)
    if cached is not None and cached.revision == row.revision:
        _cache.move_to_end(key)
        return _remember(key, cached)
    policies = await session.execute(
        select(Policy)
        .where(Policy.user_id == user_id, Policy.enabled.is_(True))
        .order_by(Policy.created_at, Policy.id)
    )
    rules = RuleSet(revision=row.revision, rules=tuple(Rule.from_row(p) for p in policies.scalars()))
    _store(key, rules)
    return _remember(key, rules)


async def bump_revision(session: AsyncSession, dialect: str, *, user_id: str) -> None:
    """Called in the transaction of every policy change."""
    enabled = (
        select(func.count())
        .select_from(Policy)
        .where(Policy.user_id == user_id, Policy.enabled.is_(True))
        .scalar_subquery()
    )
    insert = insert_for(dialect)(PolicySet).values(user_id=user_id, revision=1, enabled=enabled)
    await session.execute(
        insert.on_conflict_do_update(
            index_elements=[PolicySet.user_id],
            set_={"revision": PolicySet.revision + 1, "enabled": insert.excluded.enabled},
        )
    )
