"""The in-process moving windows, on a clock the test moves."""

from __future__ import annotations

import asyncio

from retrace_server.ratelimit.limiter import LocalWindows


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_a_window_refuses_past_its_limit_and_frees_a_slot_as_requests_age() -> None:
    async def scenario() -> None:
        clock = Clock()
        windows = LocalWindows(60, clock=clock)
        assert await windows.acquire("user/a/write", 2)
        clock.now += 10
        assert await windows.acquire("user/a/write", 2)
        clock.now += 10
        assert not await windows.acquire("user/a/write", 2)
        assert await windows.window("user/a/write", 2) == (1_000.0, 2)
        assert await windows.acquire("user/b/write", 2), "another key has its own window"
        clock.now = 1_060.0  # the first request leaves the window
        assert await windows.window("user/a/write", 2) == (1_010.0, 1)
        assert await windows.acquire("user/a/write", 2)
        assert not await windows.acquire("user/a/write", 2)

    asyncio.run(scenario())


def test_keys_without_recent_requests_are_forgotten() -> None:
    async def scenario() -> None:
        clock = Clock()
        windows = LocalWindows(60, clock=clock)
        for n in range(100):
            await windows.acquire(f"ip/10.0.0.{n}", 5)
        assert len(windows) == 100
        clock.now += 61
        await windows.acquire("ip/10.0.1.1", 5)
        assert len(windows) == 1
        assert await windows.window("ip/10.0.0.1", 5) == (clock.now, 0)
        assert len(windows) == 1, "reading a window holds no new key"

    asyncio.run(scenario())
