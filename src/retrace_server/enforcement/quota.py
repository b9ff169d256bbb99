"""Monthly plan quotas: how many traces a plan records per calendar month (UTC).

Quotas apply only when billing is configured (`RETRACE_DODO_API_KEY`): a server without billing
has no plans to sell and records without limit. A trace counts once, when it is first offered
(its id is remembered for the month, so a client re-sending it is not charged twice).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update

from retrace_server.auth.models import User
from retrace_server.config import Settings
from retrace_server.db.engine import Database
from retrace_server.db.types import utcnow
from retrace_server.db.upsert import insert_for
from retrace_server.enforcement.models import QuotaAdmission, QuotaUsage
from retrace_server.errors import PaymentRequired
from retrace_server.ingest import AdmissionHook, TraceWrite


class QuotaExceeded(PaymentRequired):
    """The plan's monthly traces are used up. The message says `limit reached`, which the official
    SDK reports as `credits_exhausted` (not retryable)."""


def monthly_limit(settings: Settings, tier: str) -> int | None:
    """Traces a month on this plan; None when unlimited."""
    if not settings.dodo_api_key:
        return None
    limit = settings.plan_pro_monthly_traces if tier == "pro" else settings.plan_free_monthly_traces
    return limit if limit > 0 else None


def _month(now: datetime) -> str:
    return now.strftime("%Y-%m")


def _next_month(now: datetime) -> str:
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return f"{year:04d}-{month:02d}-01"


async def admit_trace(
    db: Database, *, settings: Settings, user_id: str, tier: str, trace_id: str | None
) -> None:
    """Counts a new trace against the plan's monthly quota, or raises QuotaExceeded (HTTP 402).

    Call it before storing a trace that may be new. The same `trace_id` again in the same month is
    admitted without counting; `trace_id=None` (the server will make one) always counts.
    """
    limit = monthly_limit(settings, tier)
    if limit is None:
        return
    now = utcnow()
    month = _month(now)
    insert = insert_for(db.dialect)
    async with db.write() as session:
        if trace_id is not None:
            admitted = (
                await session.execute(
                    insert(QuotaAdmission)
                    .values(user_id=user_id, trace_id=trace_id, month=month)
                    .on_conflict_do_nothing()
                    .returning(QuotaAdmission.trace_id)
                )
            ).first()
            if admitted is None:
                seen = (
                    await session.execute(
                        select(QuotaAdmission.month).where(
                            QuotaAdmission.user_id == user_id, QuotaAdmission.trace_id == trace_id
                        )
                    )
                ).scalar_one()
                if seen == month:
                    return
                await session.execute(
                    update(QuotaAdmission)
                    .where(QuotaAdmission.user_id == user_id, QuotaAdmission.trace_id == trace_id)
                    .values(month=month)
                )
        usage_insert = insert(QuotaUsage).values(user_id=user_id, month=month, traces=1)
        counted = (
            await session.execute(
                usage_insert.on_conflict_do_update(
                    index_elements=[QuotaUsage.user_id, QuotaUsage.month],
                    set_={"traces": QuotaUsage.traces + 1},
                    where=QuotaUsage.traces < limit,
                ).returning(QuotaUsage.traces)
            )
        ).first()
        if counted is None:
            # Raising rolls the admission back with the transaction: a refused trace is not remembered.
            raise QuotaExceeded(
                f"Monthly trace limit reached: the {tier} plan records {limit} traces a month. "
                f"Upgrade to record more, or wait until {_next_month(now)}."
            )
        if counted.traces == 1:
            # A new month: forget the trace ids admitted in earlier ones.
            await session.execute(
                delete(QuotaAdmission).where(QuotaAdmission.user_id == user_id, QuotaAdmission.month < month)
            )


async def get_usage(db: Database, *, settings: Settings, user_id: str, tier: str) -> dict[str, object]:
    """This month's traces and the plan's limit (None when unlimited)."""
    now = utcnow()
    async with db.read() as session:
        used = (
            await session.execute(
                select(QuotaUsage.traces).where(
                    QuotaUsage.user_id == user_id, QuotaUsage.month == _month(now)
                )
            )
        ).scalar_one_or_none()
    return {
        "month": _month(now),
        "traces": used or 0,
        "limit": monthly_limit(settings, tier),
        "resets_at": _next_month(now),
    }


def admission_hook(db: Database, settings: Settings) -> AdmissionHook:
    """For `Ingestor.admission_hooks`: a new trace counts against its owner's monthly quota. The
    write's context names the owner's plan (`tier`) where the caller knows it; else it is read."""

    async def admit(user_id: str, write: TraceWrite) -> None:
        if monthly_limit(settings, "free") is None and monthly_limit(settings, "pro") is None:
            return
        tier = write.context.get("tier") or await _tier_of(db, user_id=user_id)
        await admit_trace(db, settings=settings, user_id=user_id, tier=tier, trace_id=write.trace_id)

    return admit


async def _tier_of(db: Database, *, user_id: str) -> str:
    async with db.read() as session:
        tier = (await session.execute(select(User.tier).where(User.id == user_id))).scalar()
    return str(tier or "free")
