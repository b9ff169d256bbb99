"""Who is calling: an API key (`x-retrace-key`) or a Bearer JWT.

Three steps, each a function of its own: `authenticated_user` verifies the credentials,
`record_key_use` writes the key's `last_used_at`, `limit_user` (ratelimit) counts the request
against the user's limit. `UserDep` runs the three in that order; `OptionalUserDep` the same for
routes open without credentials. They are called in one dependency rather than chained as three:
FastAPI's resolution of each dependency costs about half as much as a whole trivial request.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import select
from starlette.requests import HTTPConnection

from retrace_server.auth import key_use, recent_keys
from retrace_server.auth.errors import CredentialsRequired, InvalidCredentials, Unauthenticated
from retrace_server.auth.identity import CurrentUser
from retrace_server.auth.keys import hash_key
from retrace_server.auth.models import ApiKey, User
from retrace_server.auth.users import ensure_user
from retrace_server.db.engine import Database
from retrace_server.errors import DomainError
from retrace_server.openapi import SecurityRequirements, declare_security
from retrace_server.ratelimit import count_failed_authentication, limit_user

__all__ = [
    "SECURITY_SCHEMES",
    "CurrentUser",
    "OptionalUserDep",
    "UserDep",
    "authenticated_user",
    "current_user",
    "identify",
    "optional_current_user",
    "record_key_use",
    "user_from_api_key",
]

# For the OpenAPI document, so that "Try it out" can send credentials.
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "ApiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "x-retrace-key",
        "description": "An API key (`rt_...`), from `retrace-server keys create` or `POST /api/v1/api-keys`.",
    },
    "Bearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An RS256 JWT (Clerk-compatible) whose `sub` is the user id.",
    },
}
_CREDENTIALS: SecurityRequirements = [{name: []} for name in SECURITY_SCHEMES]


async def identify(conn: HTTPConnection) -> CurrentUser | None:
    """The caller, or None when no credentials were sent.

    Credentials that do not verify raise 401, or 429 once the client's address has failed too
    often. Only the failure is refused: valid credentials always pass.
    """
    key = conn.headers.get("x-retrace-key")
    authorization = conn.headers.get("authorization")
    if not key and not authorization:
        return None
    db: Database = conn.app.state.db
    token = None
    if not key:
        assert authorization is not None
        key, token = _authorization_credentials(authorization)
        if key is None and token is None:
            raise await _refused(
                conn,
                "Authorization header must be `Bearer <key or jwt>`, or `Basic` with the key as password",
            )
    if key:
        user = await _user_from_key(db, key)
        if user is None:
            raise await _refused(conn, "Invalid API key")
        return user
    assert token is not None
    try:
        claims = await conn.app.state.jwt.verify(token)
    except Unauthenticated as exc:
        raise await _refused(conn, exc.message) from None
    return await _user_from_claims(db, claims["sub"])


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


async def _refused(conn: HTTPConnection, message: str) -> DomainError:
    too_many = await count_failed_authentication(conn)
    return too_many if too_many is not None else InvalidCredentials(message)


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
    user = CurrentUser(
        id=row.user_id,
        tier=row.tier,
        auth_method="api_key",
        api_key_id=row.id,
        key_last_used_at=row.last_used_at,
    )
    recent_keys.remember(key_hash, user)
    return user


async def user_from_jwt(request: Request, token: str) -> CurrentUser:
    """The user of a Bearer JWT, created on first sight; an invalid token raises 401."""
    claims = await request.app.state.jwt.verify(token)
    return await _user_from_claims(request.app.state.db, claims["sub"])


async def _user_from_claims(db: Database, user_id: str) -> CurrentUser:
    async with db.read() as session:
        tier = (await session.execute(select(User.tier).where(User.id == user_id))).scalar_one_or_none()
    if tier is None:
        async with db.write() as session:
            tier = (await ensure_user(session, user_id=user_id)).tier
    return CurrentUser(id=user_id, tier=tier, auth_method="jwt")


async def user_from_api_key(db: Database, key: str) -> CurrentUser | None:
    """The user of an active API key, its use recorded: for connections that send the key in a
    message (WebSocket)."""
    user = await _user_from_key(db, key)
    if user is not None and user.api_key_id is not None:
        await key_use.update_last_used(db, key_id=user.api_key_id, last_used_at=user.key_last_used_at)
    return user


async def authenticated_user(request: Request) -> CurrentUser:
    """The caller; 401 without credentials (or with bad ones)."""
    user = await identify(request)
    if user is None:
        raise CredentialsRequired()
    return user


async def record_key_use(request: Request, user: CurrentUser) -> None:
    if user.api_key_id is not None:
        await key_use.update_last_used(
            request.app.state.db, key_id=user.api_key_id, last_used_at=user.key_last_used_at
        )


async def current_user(request: Request) -> CurrentUser:
    """The caller, authenticated, their key's use recorded, counted against their limit."""
    user = await authenticated_user(request)
    await record_key_use(request, user)
    await limit_user(request, user_id=user.id, tier=user.tier)
    return user


async def optional_current_user(request: Request) -> CurrentUser | None:
    """For routes open without credentials: the caller, as `current_user`, when they sent any."""
    user = await identify(request)
    if user is not None:
        await record_key_use(request, user)
        await limit_user(request, user_id=user.id, tier=user.tier)
    return user


declare_security(current_user, _CREDENTIALS)
declare_security(optional_current_user, [*_CREDENTIALS, {}])

UserDep = Annotated[CurrentUser, Depends(current_user)]
OptionalUserDep = Annotated[CurrentUser | None, Depends(optional_current_user)]
