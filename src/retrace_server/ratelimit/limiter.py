"""Moving-window counters from the `limits` library, in memory or shared through Redis.

When Redis cannot be reached, requests are served unlimited (fail open) and one warning is
logged per outage; Redis is retried a few seconds later rather than on every request.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from limits.aio.storage import MemoryStorage, MovingWindowSupport, RedisStorage, Storage
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

log = logging.getLogger("retrace_server.ratelimit")

WINDOW_S = 60
REDIS_TIMEOUT_S = 0.5
REDIS_RETRY_AFTER_FAILURE_S = 5.0
REDIS_KEY_PREFIX = "retrace-ratelimit"

T = TypeVar("T")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_at: float
    """Epoch seconds when the oldest request in the window leaves it (a slot frees)."""
    decided_at: float = field(default_factory=time.time)

    def retry_after_s(self) -> int:
        return max(1, math.ceil(self.reset_at - self.decided_at))

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset_at)),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after_s())
        return headers


class Limiter:
    """Counts requests per key over a moving one-minute window."""

    def __init__(self, storage: Storage, *, shared: bool) -> None:
        assert isinstance(storage, MovingWindowSupport)
        self._storage = storage
        self._window: MovingWindowSupport = storage
        self.shared = shared
        self._unavailable_until = 0.0
        self._in_outage = False

    async def hit(self, key: str, limit: int) -> Decision | None:
        """Counts one request; None when the shared storage is unavailable (then: allow)."""
        return await self._guarded(lambda: self._hit(key, limit))

    async def _hit(self, key: str, limit: int) -> Decision:
        allowed = await self._window.acquire_entry(key, limit, WINDOW_S)
        window_start, used = await self._window.get_moving_window(key, limit, WINDOW_S)
        return Decision(
            allowed=allowed, limit=limit, remaining=max(0, limit - used), reset_at=window_start + WINDOW_S
        )

    async def count(self, key: str, limit: int) -> int | None:
        """Requests counted for `key` in the current window, counting none; None when unavailable."""
        window = await self._guarded(lambda: self._window.get_moving_window(key, limit, WINDOW_S))
        return None if window is None else int(window[1])

    async def _guarded(self, call: Callable[[], Awaitable[T]]) -> T | None:
        if not self.shared:
            return await call()
        if self._unavailable_until > time.monotonic():
            return None
        try:
            result = await call()
        except Exception as exc:
            self._unavailable_until = time.monotonic() + REDIS_RETRY_AFTER_FAILURE_S
            if not self._in_outage:
                self._in_outage = True
                log.warning("rate limiting is off: Redis is unavailable (%s: %s)", type(exc).__name__, exc)
            return None
        if self._in_outage:
            self._in_outage = False
            log.warning("rate limiting is back on: Redis is reachable again")
        return result

    async def close(self) -> None:
        if isinstance(self._storage, RedisStorage):
            client: Any = self._storage.bridge.get_connection()
            await client.aclose()


def make_limiter(redis_url: str | None) -> Limiter:
    if not redis_url:
        return Limiter(MemoryStorage(), shared=False)
    storage = RedisStorage(
        "async+" + redis_url,
        implementation="redispy",
        key_prefix=REDIS_KEY_PREFIX,
        socket_timeout=REDIS_TIMEOUT_S,
        socket_connect_timeout=REDIS_TIMEOUT_S,
        # Fail fast: a request never waits on reconnect back-offs.
        retry=Retry(NoBackoff(), 0),  # type: ignore[arg-type]
    )
    return Limiter(storage, shared=True)
