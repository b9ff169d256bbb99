"""Holds: an action a policy asks a person about, pending until approved, denied or expired.

Expiry needs no sweeper: a pending hold past its `expires_at` reads as `expired`, and its policy's
`on_timeout` verdict applies from then on; deciding it answers 409.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from retrace_server.db.engine import Database
from retrace_server.db.types import utcnow
from retrace_server.enforcement.models import Hold
from retrace_server.enforcement.schemas import HoldStatus, Verdict
from retrace_server.errors import Conflict, NotFound
from retrace_server.pagination import Page

_DECIDED_VERDICTS: dict[str, Verdict] = {"pending": "hold", "approved": "allow", "denied": "block"}


class HoldState(Protocol):
    """What a hold's verdict depends on: a `Hold`, or the columns read without the ORM."""

    @property
    def status(self) -> str: ...
    @property
    def expires_at(self) -> datetime: ...
    @property
    def on_timeout(self) -> str: ...


def current_status(hold: HoldState, now: datetime) -> HoldStatus:
    if hold.status == "pending" and hold.expires_at <= now:
        return "expired"
    status: HoldStatus = hold.status  # type: ignore[assignment]
    return status


def verdict_of(hold: HoldState, now: datetime) -> Verdict:
    status = current_status(hold, now)
    if status == "expired":
        return "allow" if hold.on_timeout == "allow" else "block"
    return _DECIDED_VERDICTS[status]


def hold_dict(hold: Hold, now: datetime) -> dict[str, Any]:
    status = current_status(hold, now)
    return {
        "id": hold.id,
        "status": status,
        "verdict": verdict_of(hold, now),
        "policy_id": hold.policy_id,
        "policy_name": hold.policy_name,
        "kind": hold.kind,
        "run_id": hold.run_id,
        "trace_id": hold.trace_id,
        "span_id": hold.span_id,
        "tool_name": hold.tool_name,
        "tool_args_hash": hold.tool_args_hash,
        "reason": hold.reason,
        "on_timeout": hold.on_timeout,
        "note": hold.note,
        "created_at": hold.created_at,
        "expires_at": hold.expires_at,
        "decided_at": hold.expires_at if status == "expired" and hold.decided_at is None else hold.decided_at,
    }


async def get(db: Database, *, user_id: str, hold_id: str) -> dict[str, Any]:
    async with db.read() as session:
        hold = await _owned(session, user_id=user_id, hold_id=hold_id)
    return hold_dict(hold, utcnow())


async def _owned(session: AsyncSession, *, user_id: str, hold_id: str) -> Hold:
    hold = (
        await session.execute(select(Hold).where(Hold.id == hold_id, Hold.user_id == user_id))
    ).scalar_one_or_none()
    if hold is None:
        raise NotFound("Hold")
    return hold


def _status_filter(status: HoldStatus, now: datetime) -> Any:
    if status == "pending":
        return and_(Hold.status == "pending", Hold.expires_at > now)
    if status == "expired":
        return or_(Hold.status == "expired", and_(Hold.status == "pending", Hold.expires_at <= now))
    return Hold.status == status


async def list_holds(
    db: Database, *, user_id: str, page: Page, status: HoldStatus | None = None, run_id: str | None = None
) -> tuple[list[dict[str, Any]], int]:
    """The user's holds, newest first."""
    now = utcnow()
    conditions: list[Any] = [Hold.user_id == user_id]
    if status is not None:
        conditions.append(_status_filter(status, now))
    if run_id is not None:
        conditions.append(Hold.run_id == run_id)
    async with db.read() as session:
        total = int(
            (await session.execute(select(func.count()).select_from(Hold).where(*conditions))).scalar_one()
        )
        rows = await session.execute(
            select(Hold)
            .where(*conditions)
            .order_by(Hold.created_at.desc(), Hold.id.desc())
            .limit(page.limit)
            .offset(page.offset)
        )
        return [hold_dict(hold, now) for hold in rows.scalars()], total


async def decide(
    db: Database, *, user_id: str, hold_id: str, approve: bool, note: str | None
) -> dict[str, Any]:
    """Approves or denies a pending hold; a decided or expired one answers Conflict."""
    now = utcnow()
    async with db.write() as session:
        decided = await session.execute(
            update(Hold)
            .where(
                Hold.id == hold_id,
                Hold.user_id == user_id,
                Hold.status == "pending",
                Hold.expires_at > now,
            )
            .values(status="approved" if approve else "denied", note=note, decided_at=now)
        )
        hold = await _owned(session, user_id=user_id, hold_id=hold_id)
        if decided.rowcount == 0:  # type: ignore[attr-defined]
            raise Conflict(
                f"Hold {hold_id!r} is already {current_status(hold, now)}; only a pending hold is decided"
            )
        await session.refresh(hold)
        return hold_dict(hold, now)


def answers_again(existing: HoldState, *, per_call: bool, span_id: str | None, now: datetime) -> bool:
    """Whether a run's latest hold for a policy gives this call its verdict. Without a span id a
    decided hold cannot tell this call from the one it was about: a new hold asks again."""
    return not (per_call and span_id is None and current_status(existing, now) != "pending")


async def approved_for_run(session: AsyncSession, *, user_id: str, run_id: str) -> list[Hold]:
    """The run's holds whose verdict lets it go on (approved, or expired with `on_timeout: allow`)."""
    now = utcnow()
    rows = await session.execute(select(Hold).where(Hold.user_id == user_id, Hold.run_id == run_id))
    return [hold for hold in rows.scalars() if verdict_of(hold, now) == "allow"]
