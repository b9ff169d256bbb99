"""Signed-in browser sessions: create, read, rebind and delete, keyword-only.

The cookie carries 256 random bits; the table keeps their SHA-256. A session opened with an API
key lives only as long as that key does: revoking or rotating the key elsewhere ends it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import and_, delete, insert, or_, select
from sqlalchemy import update as sql_update

from retrace_server.auth.dependencies import CurrentUser
from retrace_server.auth.models import ApiKey, User
from retrace_server.db.engine import Database
from retrace_server.db.types import utcnow
from retrace_server.web.models import WebSession


@dataclass(frozen=True)
class SignedIn:
    """The user of a valid session, and the token that state-changing forms must echo."""

    user: CurrentUser
    csrf_token: str
    expires_at: datetime


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create(
    db: Database, *, user: CurrentUser, api_key_hash: str | None, lifetime: timedelta
) -> tuple[str, SignedIn]:
    """A new session for `user`; answers the cookie token (shown only here) and the session."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    signed_in = SignedIn(user=user, csrf_token=secrets.token_urlsafe(32), expires_at=now + lifetime)
    async with db.write() as session:
        await session.execute(delete(WebSession).where(WebSession.expires_at <= now))
        await session.execute(
            insert(WebSession).values(
                token_hash=token_hash(token),
                user_id=user.id,
                api_key_hash=api_key_hash,
                auth_method=user.auth_method,
                csrf_token=signed_in.csrf_token,
                created_at=now,
                expires_at=signed_in.expires_at,
            )
        )
    return token, signed_in


async def get(db: Database, *, token: str) -> SignedIn | None:
    """The session of a cookie token, or None when it is unknown, expired, or its key was revoked."""
    key_still_active = or_(
        WebSession.api_key_hash.is_(None),
        select(ApiKey.id)
        .where(and_(ApiKey.key_hash == WebSession.api_key_hash, ApiKey.revoked_at.is_(None)))
        .exists(),
    )
    async with db.read() as session:
        row = (
            await session.execute(
                select(
                    WebSession.user_id,
                    WebSession.auth_method,
                    WebSession.csrf_token,
                    WebSession.expires_at,
                    User.tier,
                )
                .join(User, User.id == WebSession.user_id)
                .where(WebSession.token_hash == token_hash(token), WebSession.expires_at > utcnow())
                .where(key_still_active)
            )
        ).first()
    if row is None:
        return None
    method: Literal["api_key", "jwt"] = "jwt" if row.auth_method == "jwt" else "api_key"
    return SignedIn(
        user=CurrentUser(id=row.user_id, tier=row.tier, auth_method=method),
        csrf_token=row.csrf_token,
        expires_at=row.expires_at,
    )


async def update(db: Database, *, token: str, api_key_hash: str) -> None:
    """Binds the session to a new key of its user (after the user rotated it from this session)."""
    async with db.write() as session:
        await session.execute(
            sql_update(WebSession)
            .where(WebSession.token_hash == token_hash(token))
            .values(api_key_hash=api_key_hash)
        )


async def delete_session(db: Database, *, token: str) -> None:
    async with db.write() as session:
        await session.execute(delete(WebSession).where(WebSession.token_hash == token_hash(token)))
