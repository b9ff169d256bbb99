"""API keys: made with a CSPRNG, stored only as a SHA-256 hash, shown once."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from retrace_server.auth.models import ApiKey
from retrace_server.auth.users import ensure_user
from retrace_server.db.types import utcnow

# The official SDK's `configure()` refuses keys starting `rt_live_` or `rt_test_` (the hosted
# service's own forms), so keys are `rt_` and the random part; `rt_live_` keys issued before keep
# working, since a key is found by its hash whatever its form.
KEY_PREFIX = "rt_"
_SDK_REFUSED_PREFIXES = ("rt_live_", "rt_test_")
DISPLAY_PREFIX_LENGTH = 12


def generate_key() -> str:
    while True:
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        # The random part starts `live_` or `test_` about twice in a billion keys.
        if not key.startswith(_SDK_REFUSED_PREFIXES):
            return key


def hash_key(key: str) -> str:
    # Keys carry 256 random bits, so a fast unsalted hash is enough and keeps look-ups indexed.
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedKey:
    key: str
    prefix: str
    created_at: datetime


async def issue_key(session: AsyncSession, *, user_id: str, tier: str | None = None) -> IssuedKey:
    """Creates the user if missing and gives them a new key; any previous key stops working."""
    await ensure_user(session, user_id=user_id, tier=tier)
    now = utcnow()
    await session.execute(
        update(ApiKey).where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None)).values(revoked_at=now)
    )
    key = generate_key()
    session.add(
        ApiKey(
            id=str(uuid.uuid4()),
            user_id=user_id,
            key_hash=hash_key(key),
            prefix=key[:DISPLAY_PREFIX_LENGTH],
            created_at=now,
        )
    )
    await session.flush()
    return IssuedKey(key=key, prefix=key[:DISPLAY_PREFIX_LENGTH], created_at=now)


async def active_key(session: AsyncSession, *, user_id: str) -> ApiKey | None:
    result = await session.execute(
        select(ApiKey).where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
    )
    return result.scalars().first()
