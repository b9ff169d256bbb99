"""Who may stream, and how much: API-key authentication and the per-user write limit."""

from __future__ import annotations

from starlette.websockets import WebSocket

from retrace_server.auth.dependencies import CurrentUser, user_from_api_key
from retrace_server.enforcement import quota
from retrace_server.enforcement.quota import QuotaExceeded
from retrace_server.ratelimit import count_failed_authentication


class StreamRefused(Exception):
    def __init__(self, message: str, *, close_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.close_code = close_code


AUTH_FAILED_CLOSE = 4001
RATE_LIMITED_CLOSE = 4029


async def authenticate(websocket: WebSocket, api_key: str) -> CurrentUser:
    """The key's user. A bad key counts against its address's failed-authentication budget, and
    past it is refused more slowly (4029); a key that verifies is never refused for other
    connections' failures."""
    user = await user_from_api_key(websocket.app.state.db, api_key)
    if user is not None:
        return user
    too_many = await count_failed_authentication(websocket)
    if too_many is not None:
        raise StreamRefused(too_many.message, close_code=RATE_LIMITED_CLOSE)
    raise StreamRefused("Invalid API key", close_code=AUTH_FAILED_CLOSE)


async def admit_trace(websocket: WebSocket, user: CurrentUser, trace_id: str) -> str | None:
    """A streamed trace counts as one write when it starts (its frames are not counted one by one),
    and once against the plan's monthly quota.

    Answers the refusal message when the user is over a limit, else None. The SDK reads "Rate limit"
    in it as a retryable signal, and "limit reached" (the quota) as credits exhausted.
    """
    try:
        await quota.admit_trace(
            websocket.app.state.db,
            settings=websocket.app.state.settings,
            user_id=user.id,
            tier=user.tier,
            trace_id=trace_id,
        )
    except QuotaExceeded as exc:
        return exc.message
    limits = getattr(websocket.app.state, "rate_limits", None)
    if limits is None:
        return None
    limit = limits.policy.user_limit(user.tier, "write")
    decision = await limits.limiter.hit(f"user/{user.id}/write", limit)
    if decision is None or decision.allowed:
        return None
    seconds = decision.retry_after_s()
    plural = "s" if seconds != 1 else ""
    return (
        f"Rate limit exceeded: {limit} write requests per minute on the {user.tier} plan, and a streamed "
        f"trace counts as one. The trace was not stored; retry in {seconds} second{plural}."
    )
