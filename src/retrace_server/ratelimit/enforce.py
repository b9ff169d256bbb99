"""Applies the limits to requests: per user after authentication, per IP otherwise, and per IP
for failed authentications.

Headers go to `request.state.response_headers`, which the request middleware adds to the
response, 429s included. This module knows users only by id and tier: the auth domain calls it,
never the reverse.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from starlette.requests import HTTPConnection, Request

from retrace_server.config import Settings
from retrace_server.ratelimit.errors import RateLimited
from retrace_server.ratelimit.limiter import Decision, Limiter, make_limiter
from retrace_server.ratelimit.policy import RatePolicy, request_kind

# A failed authentication past the address's budget is answered only after this pause, so that
# guessing keys from one address cannot go faster than its connections allow; keys that verify
# never wait. Past MAX_HELD_REFUSALS waiting at once, refusals go out at once (the pause must not
# cost the server its connections).
REFUSED_GUESS_DELAY_S = 1.0
MAX_HELD_REFUSALS = 256
FAILED_AUTHENTICATION = "too many failed authentication attempts from this address"


@dataclass
class RateLimits:
    """What `app.state.rate_limits` holds while limiting is enabled."""

    limiter: Limiter
    policy: RatePolicy
    held_refusals: int = 0


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


def _too_many(decision: Decision, reason: str) -> RateLimited:
    seconds = decision.retry_after_s()
    return RateLimited(
        f"Rate limit exceeded: {reason}. Retry in {seconds} second{'s' if seconds != 1 else ''}."
    )


async def limit_user(conn: HTTPConnection, *, user_id: str, tier: str) -> None:
    """Counts the request against the user's tier limit for its kind (read or write)."""
    limits = _rate_limits(conn)
    if limits is None or conn.scope["type"] != "http" or _already_limited(conn):
        return
    kind = request_kind(conn.scope["method"], conn.scope["path"])
    limit = limits.policy.user_limit(tier, kind)
    decision = await limits.limiter.hit(f"user/{user_id}/{kind}", limit)
    if decision is None:
        return
    _publish(conn, decision)
    if not decision.allowed:
        hint = "; send spans in batches to write more per request" if kind == "write" else ""
        raise _too_many(decision, f"{limit} {kind} requests per minute on the {tier} plan{hint}")


async def get_usage(
    conn: HTTPConnection, *, user_id: str, tier: str
) -> dict[str, dict[str, int | None]] | None:
    """This minute's use of each of the user's limits (`read`, `write`): `limit` and `used`,
    counting no request. None when rate limiting is off; `used` is None while Redis is away."""
    limits = _rate_limits(conn)
    if limits is None:
        return None
    usage: dict[str, dict[str, int | None]] = {}
    for kind in ("read", "write"):
        limit = limits.policy.user_limit(tier, kind)
        usage[kind] = {"limit": limit, "used": await limits.limiter.count(f"user/{user_id}/{kind}", limit)}
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


async def _count_failure(limits: RateLimits, ip: str) -> Decision | None:
    return await limits.limiter.hit(f"auth-failures/{ip}", limits.policy.auth_failures_per_ip)


async def count_failed_authentication(conn: HTTPConnection) -> RateLimited | None:
    """Counts a failed authentication against the client's address.

    Within the address's budget, answers None (the caller refuses with 401). Past it, answers
    the 429 to give instead, after a pause that slows guessing. Only failures are counted and
    only failures are refused: a key that verifies is never refused for its address's failures.
    """
    limits = _rate_limits(conn)
    if limits is None:
        return None
    decision = await _count_failure(limits, client_ip(conn))
    if decision is None or decision.allowed:
        return None
    _publish(conn, decision)
    if limits.held_refusals < MAX_HELD_REFUSALS:
        limits.held_refusals += 1
        try:
            await asyncio.sleep(REFUSED_GUESS_DELAY_S)
        finally:
            limits.held_refusals -= 1
    return _too_many(decision, FAILED_AUTHENTICATION)


def make_rate_limits(settings: Settings) -> RateLimits | None:
    """The process's limits, or None when `RETRACE_RATE_LIMIT_ENABLED=false`."""
    if not settings.rate_limit_enabled:
        return None
    return RateLimits(limiter=make_limiter(settings.redis_url), policy=RatePolicy.from_settings(settings))


async def close_rate_limits(limits: RateLimits | None) -> None:
    if limits is not None:
        await limits.limiter.close()
