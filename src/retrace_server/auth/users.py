from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from retrace_server.auth.models import User

TIERS = ("free", "pro")


async def ensure_user(session: AsyncSession, *, user_id: str, tier: str | None = None) -> User:
    """Returns the user, creating it on first sight; `tier`, when given, is applied."""
    user = await session.get(User, user_id)
    if user is None:
        user = User(id=user_id, tier=tier or "free")
        session.add(user)
        await session.flush()
    elif tier is not None and user.tier != tier:
        user.tier = tier
    return user


async def get_user(session: AsyncSession, *, user_id: str) -> User | None:
    return (await session.execute(select(User).where(User.id == user_id))).scalar_one_or_none()
