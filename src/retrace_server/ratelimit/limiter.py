"""Moving-window counters: in this process's memory, or shared through Redis (the `limits`
library's moving window).

When Redis cannot be reached, requests are served unlimited (fail open) and one warning is
logged per outage; Redis is retried a few seconds later rather than on every request.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from limits.aio.storage import RedisStorage
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


class Windows(Protocol):
    """Where the moving windows live. A window is (epoch seconds of its oldest request, count)."""

    async def acquire(self, key: str, limit: int) -> bool: ...

    async def window(self, key: str, limit: int) -> tuple[float, int]: ...

    async def close(self) -> None: ...


class LocalWindows:
    """The windows of one process: each key's request times within the last `window_s`, oldest
    first. A request costs a few list operations on the event loop, with no task or thread."""

    def __init__(self, window_s: float = WINDOW_S, clock: Callable[[], float] = time.time) -> None:
        self._window_s = window_s
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._next_sweep = clock() + window_s

    def __len__(self) -> int:
        """The keys held in memory."""
        return len(self._hits)

    async def acquire(self, key: str, limit: int) -> bool:
        now = self._clock()
        self._sweep(now)
        hits = self._current(key, now)
        if hits is None:
            hits = self._hits[key] = deque()
        if len(hits) >= limit:
            return False
        hits.append(now)
        return True

    async def window(self, key: str, limit: int) -> tuple[float, int]:
        now = self._clock()
        hits = self._current(key, now)
        return (hits[0], len(hits)) if hits else (now, 0)

    async def close(self) -> None:
        self._hits.clear()

    def _current(self, key: str, now: float) -> deque[float] | None:
        """The key's requests still in the window (None: the key is not held)."""
        hits = self._hits.get(key)
        cutoff = now - self._window_s
        while hits and hits[0] <= cutoff:
            hits.popleft()
        return hits

    def _sweep(self, now: float) -> None:
        """Forgets keys with no request in the window, once a window, so memory follows the
        number of recent clients rather than of all clients ever seen."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + self._window_s
        cutoff = now - self._window_s
        for key in [key for key, hits in self._hits.items() if not hits or hits[-1] <= cutoff]:
            del self._hits[key]


class RedisWindows:
    """The windows shared by every process through Redis (the `limits` library's moving window)."""

    def __init__(self, redis_url: str) -> None:
        self._storage = RedisStorage(
            "async+" + redis_url,
            implementation="redispy",
            key_prefix=REDIS_KEY_PREFIX,
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
            # Fail fast: a request never waits on reconnect back-offs.
            retry=Retry(NoBackoff(), 0),  # type: ignore[arg-type]
        )

    async def acquire(self, key: str, limit: int) -> bool:
        return await self._storage.acquire_entry(key, limit, WINDOW_S)

    async def window(self, key: str, limit: int) -> tuple[float, int]:
        start, used = await self._storage.get_moving_window(key, limit, WINDOW_S)
        return float(start), int(used)

    async def close(self) -> None:
        bridge: Any = self._storage.bridge
        client: Any = bridge.get_connection()
        await client.aclose()


class Limiter:
    """Counts requests per key over a moving one-minute window."""

    def __init__(self, windows: Windows, *, shared: bool) -> None:
        self._windows = windows
        self.shared = shared
        self._unavailable_until = 0.0
        self._in_outage = False

    async def hit(self, key: str, limit: int) -> Decision | None:
        """Counts one request; None when the shared storage is unavailable (then: allow)."""
        return await self._guarded(lambda: self._hit(key, limit))

    async def _hit(self, key: str, limit: int) -> Decision:
        allowed = await self._windows.acquire(key, limit)
        window_start, used = await self._windows.window(key, limit)
        return Decision(
            allowed=allowed, limit=limit, remaining=max(0, limit - used), reset_at=window_start + WINDOW_S
        )

    async def count(self, key: str, limit: int) -> int | None:
        """Requests counted for `key` in the current window, counting none; None when unavailable."""
        window = await self._guarded(lambda: self._windows.window(key, limit))
        return None if window is None else window[1]

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
        await self._windows.close()


def make_limiter(redis_url: str | None) -> Limiter:
    if not redis_url:
        return Limiter(LocalWindows(), shared=False)
    return Limiter(RedisWindows(redis_url), shared=True)
