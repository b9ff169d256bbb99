"""Who is calling: an API key (`x-retrace-key`) or a Bearer JWT."""

from __future__ import annotations

import base64
import binascii
import inspect
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Literal

from fastapi import Depends, Request
from sqlalchemy import select, update

from retrace_server.auth import recent_keys
from retrace_server.auth.keys import hash_key
from retrace_server.auth.models import ApiKey, User
from retrace_server.auth.users import ensure_user
from retrace_server.db.engine import Database
from retrace_server.db.types import utcnow
from retrace_server.errors import ApiError
from retrace_server.ratelimit.enforce import guard_authentication, limit_user

LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class CurrentUser:
    id: str
    tier: str
    auth_method: Literal["api_key", "jwt"]
    api_key_id: str | None = None


async def authenticate(request: Request) -> CurrentUser | None:
    """The caller, or None when no credentials were sent. Bad credentials raise 401."""
    db: Database = request.app.state.db
    key = request.headers.get("x-retrace-key")
    authorization = request.headers.get("authorization")
    if not key and not authorization:
        return None
    await guard_authentication(request)
    token = None
    if not key:
        assert authorization is not None
        key, token = _authorization_credentials(authorization)
        if key is None and token is None:
            raise await _auth_failed(
                request,
                "Authorization header must be `Bearer <key or jwt>`, or `Basic` with the key as password",
            )
    if key:
        user = await _user_from_key(db, key)
    else:
        try:
            claims = await request.app.state.jwt.verify(token)
        except ApiError as exc:
            raise await _auth_failed(request, exc.message) from None
        user = await _user_from_claims(db, claims["sub"])
    if user is None:
        raise await _auth_failed(request, "Invalid API key")
    request.state.user = user
    await limit_user(request, user)
    return user


def _authorization_credentials(authorization: str) -> tuple[str | None, str | None]:
    """(API key, JWT) from an Authorization header. OpenTelemetry exporters send keys as
    `Bearer <key>` (OTEL_EXPORTER_OTLP_HEADERS) and the Langfuse SDK as the password of `Basic`
    credentials; a bearer token with three dot-separated parts is a JWT."""
    scheme, _, credentials = authorization.strip().partition(" ")
    credentials = credentials.strip()
    if not credentials:
        return None, None
    if scheme.lower() == "bearer":
        return (None, credentials) if credentials.count(".") == 2 else (credentials, None)
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None, None
        password = decoded.partition(":")[2]
        return (password, None) if password else (None, None)
    return None, None


async def _auth_failed(request: Request, message: str) -> ApiError:
    hook = getattr(request.app.state, "on_auth_failure", None)
    if hook is not None:
        outcome = hook(request)
        if inspect.isawaitable(outcome):
            await outcome
    return ApiError(401, message)


async def _user_from_key(db: Database, key: str) -> CurrentUser | None:
    key_hash = hash_key(key)
    known = recent_keys.get(key_hash)
    if known is not None:
        return known
    async with db.read() as session:
        row = (
            await session.execute(
                select(ApiKey.id, ApiKey.user_id, ApiKey.last_used_at, User.tier)
                .join(User, User.id == ApiKey.user_id)
                .where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
            )
        ).first()
    if row is None:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        async with db.write() as session:
            await session.execute(update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=now))
    user = CurrentUser(id=row.user_id, tier=row.tier, auth_method="api_key", api_key_id=row.id)
    recent_keys.remember(key_hash, user)
    return user


async def user_from_api_key(db: Database, key: str) -> CurrentUser | None:
    """The user of an active API key, for connections that send the key in a message (WebSocket)."""
    return await _user_from_key(db, key)


async def _user_from_claims(db: Database, user_id: str) -> CurrentUser:
    async with db.read() as session:
        tier = (await session.execute(select(User.tier).where(User.id == user_id))).scalar_one_or_none()
    if tier is None:
        async with db.write() as session:
            tier = (await ensure_user(session, user_id=user_id)).tier
    return CurrentUser(id=user_id, tier=tier, auth_method="jwt")


async def require_user(request: Request) -> CurrentUser:
    user = await authenticate(request)
    if user is None:
        raise ApiError(
            401, "Authentication required: send `x-retrace-key: rt_...` or `Authorization: Bearer <jwt>`"
        )
    return user


UserDep = Annotated[CurrentUser, Depends(require_user)]
