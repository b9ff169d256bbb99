"""A user's enabled policies, kept in memory per process and reloaded when their revision moves.

Every policy change bumps the user's row in `enforcement_policy_sets` in the same transaction, so
one indexed read tells a process whether the rules it holds are current, in every process.

The check and ingest's backstop review (`recent_rules`) skip even that read for a second after the
last one, for they run on every step and write; a change made in another process reaches them a
second later at most.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from retrace_server.db.upsert import insert_for
from retrace_server.enforcement.models import Policy, PolicySet
from retrace_server.enforcement.rules import Rule, RuleSet
from retrace_server.recent import Recent

# Ingest reviews every write, and the SDK checks every step: for a user, the revision is reread
# at most this often per process (a change made in this process is seen at once, `forget`).
RECENT_RULES_MAX_AGE_S = 1.0

# (database, user) -> the rules last loaded, current or not (their revision says).
_loaded: Recent[tuple[str, str], RuleSet] = Recent()
# (database, user) -> what the last read of the user's revision found, for `RECENT_RULES_MAX_AGE_S`.
_read: Recent[tuple[str, str], RuleSet | None] = Recent(max_age_s=RECENT_RULES_MAX_AGE_S)


def recent_rules(*, database: str, user_id: str) -> tuple[bool, RuleSet | None]:
    """(True, rules) when this process read the user's rules within `RECENT_RULES_MAX_AGE_S`."""
    return _read.lookup((database, user_id))


def forget(user_id: str) -> None:
    """After a policy change commits here: this process's next read is fresh."""
    _read.discard_where(lambda key: key[1] == user_id)


def cached(*, database: str, user_id: str) -> RuleSet | None:
    """The rules this process last loaded for the user, current or not: compare their revision."""
    return _loaded.lookup((database, user_id))[1]


def read(*, database: str, user_id: str, rules: RuleSet | None) -> RuleSet | None:
    """Records what a read of the user's revision found without `rules_for`: `rules` at it
    (freshly loaded, or `cached` still current), or None when the user has no enabled policy."""
    key = (database, user_id)
    if rules is not None:
        _loaded.put(key, rules)
    return _read.put(key, rules)


async def rules_for(session: AsyncSession, *, database: str, user_id: str) -> RuleSet | None:
    """The user's enabled policies, or None when they have none (the common, cheapest case)."""
    row = (
        await session.execute(
            select(PolicySet.revision, PolicySet.enabled).where(PolicySet.user_id == user_id)
        )
    ).first()
    if row is None or row.enabled == 0:
        return read(database=database, user_id=user_id, rules=None)
    cached_rules = cached(database=database, user_id=user_id)
    if cached_rules is not None and cached_rules.revision == row.revision:
        return read(database=database, user_id=user_id, rules=cached_rules)
    policies = await session.execute(
        select(Policy)
        .where(Policy.user_id == user_id, Policy.enabled.is_(True))
        .order_by(Policy.created_at, Policy.id)
    )
    rules = RuleSet(revision=row.revision, rules=tuple(Rule.from_row(p) for p in policies.scalars()))
    return read(database=database, user_id=user_id, rules=rules)


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
