"""Applies the limits to requests: per user after authentication, per IP otherwise.

Headers go to `request.state.response_headers`, which the request middleware adds to the
response, 429s included.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection, Request

from retrace_server.config import Settings
from retrace_server.errors import ApiError
from retrace_server.ratelimit.limiter import Decision, Limiter, make_limiter
from retrace_server.ratelimit.policy import RatePolicy, request_kind

if TYPE_CHECKING:
    from retrace_server.auth.dependencies import CurrentUser

_MAX_BLOCKED_ADDRESSES = 10_000


@dataclass
class RateLimits:
    """What `app.state.rate_limits` holds while limiting is enabled."""

    limiter: Limiter
    policy: RatePolicy
    # Addresses out of failed-authentication attempts, until when. Kept in the process so that
    # valid requests cost no extra Redis round trip; the count itself is shared.
    blocked_until: dict[str, float] = field(default_factory=dict)

    def block(self, ip: str, until: float) -> None:
        if len(self.blocked_until) >= _MAX_BLOCKED_ADDRESSES:
            now = time.time()
            self.blocked_until = {k: v for k, v in self.blocked_until.items() if v > now}
        self.blocked_until[ip] = until


def _rate_limits(conn: HTTPConnection) -> RateLimits | None:
    return getattr(conn.app.state, "rate_limits", None)


def client_ip(conn: HTTPConnection) -> str:
    return conn.client.host if conn.client else "unknown"


def _already_limited(conn: HTTPConnection) -> bool:
    return bool(getattr(conn.state, "rate_limited", False))


def _publish(conn: HTTPConnection, decision: Decision) -> None:
    conn.state.rate_limited = True
    headers = getattr(conn.state, "response_headers", None)
    if headers is not None:
        headers.update(decision.headers())


def _too_many(decision: Decision, reason: str) -> ApiError:
    seconds = decision.retry_after_s()
    return ApiError(
        429, f"Rate limit exceeded: {reason}. Retry in {seconds} second{'s' if seconds != 1 else ''}."
    )


async def limit_user(conn: HTTPConnection, user: CurrentUser) -> None:
    """Counts the request against the user's tier limit for its kind (read or write)."""
    limits = _rate_limits(conn)
    if limits is None or conn.scope["type"] != "http" or _already_limited(conn):
        return
    kind = request_kind(conn.scope["method"], conn.scope["path"])
    limit = limits.policy.user_limit(user.tier, kind)
    decision = await limits.limiter.hit(f"user/{user.id}/{kind}", limit)
    if decision is None:
        return
    _publish(conn, decision)
    if not decision.allowed:
        hint = "; send spans in batches to write more per request" if kind == "write" else ""
        raise _too_many(decision, f"{limit} {kind} requests per minute on the {user.tier} plan{hint}")


async def get_usage(conn: HTTPConnection, *, user: CurrentUser) -> dict[str, dict[str, int | None]] | None:
    """This minute's use of each of the user's limits (`read`, `write`): `limit` and `used`,
    counting no request. None when rate limiting is off; `used` is None while Redis is away."""
    limits = _rate_limits(conn)
    if limits is None:
        return None
    usage: dict[str, dict[str, int | None]] = {}
    for kind in ("read", "write"):
        limit = limits.policy.user_limit(user.tier, kind)
        usage[kind] = {"limit": limit, "used": await limits.limiter.count(f"user/{user.id}/{kind}", limit)}
    return usage


async def ip_rate_limit(request: Request) -> None:
    """Dependency for routes open without authentication: limits them per client IP."""
    limits = _rate_limits(request)
    if limits is None or _already_limited(request):
        return
    limit = limits.policy.per_ip
    decision = await limits.limiter.hit(f"ip/{client_ip(request)}", limit)
    if decision is None:
        return
    _publish(request, decision)
    if not decision.allowed:
        raise _too_many(decision, f"{limit} unauthenticated requests per minute from one address")


async def guard_authentication(conn: HTTPConnection) -> None:
    """Refuses to check credentials from an address that failed too often, so keys cannot be guessed."""
    limits = _rate_limits(conn)
    if limits is None or not limits.blocked_until:
        return
    ip = client_ip(conn)
    until = limits.blocked_until.get(ip)
    if until is None:
        return
    if until <= time.time():
        del limits.blocked_until[ip]
        return
    decision = Decision(allowed=False, limit=limits.policy.auth_failures_per_ip, remaining=0, reset_at=until)
    _publish(conn, decision)
    raise _too_many(decision, "too many failed authentication attempts from this address")


async def record_auth_failure(conn: HTTPConnection) -> None:
    limits = _rate_limits(conn)
    if limits is None:
        return
    ip = client_ip(conn)
    decision = await limits.limiter.hit(f"auth-failures/{ip}", limits.policy.auth_failures_per_ip)
    if decision is not None and decision.remaining == 0:
        limits.block(ip, decision.reset_at)


def make_rate_limits(settings: Settings) -> RateLimits | None:
    """The process's limits, or None when `RETRACE_RATE_LIMIT_ENABLED=false`."""
    if not settings.rate_limit_enabled:
        return None
    return RateLimits(limiter=make_limiter(settings.redis_url), policy=RatePolicy.from_settings(settings))


async def close_rate_limits(limits: RateLimits | None) -> None:
    if limits is not None:
        await limits.limiter.close()
