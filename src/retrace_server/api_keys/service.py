"""The one active API key of a user: generate (replacing the old one), inspect, revoke."""

from __future__ import annotations

from sqlalchemy import select, update

from retrace_server.api_keys.errors import ApiKeyNotFound
from retrace_server.api_keys.schemas import ApiKeyCreated, ApiKeyStatus
from retrace_server.auth import recent_keys
from retrace_server.auth.keys import active_key, issue_key
from retrace_server.auth.models import ApiKey, User
from retrace_server.db.engine import Database
from retrace_server.db.types import utcnow


async def create(db: Database, *, user_id: str) -> ApiKeyCreated:
    async with db.write() as session:
        # Serialises concurrent rotations of one user so that exactly one key stays active.
        await session.execute(select(User.id).where(User.id == user_id).with_for_update())
        issued = await issue_key(session, user_id=user_id)
    recent_keys.forget_user(user_id)
    return ApiKeyCreated(key=issued.key, prefix=issued.prefix, created_at=issued.created_at)


async def get(db: Database, *, user_id: str) -> ApiKeyStatus:
    async with db.read() as session:
        key = await active_key(session, user_id=user_id)
    if key is None:
        return ApiKeyStatus(exists=False)
    return ApiKeyStatus(
        exists=True, prefix=key.prefix, created_at=key.created_at, last_used_at=key.last_used_at
    )


async def delete(db: Database, *, user_id: str) -> None:
    async with db.write() as session:
        result = await session.execute(
            update(ApiKey)
            .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
    recent_keys.forget_user(user_id)
    if not result.rowcount:  # type: ignore[attr-defined]
        raise ApiKeyNotFound()
