"""Cost of the rate limiter per request, in-process (the check `authenticate` runs for every caller).

    python bench/ratelimit.py [--requests N] [--redis redis://127.0.0.1:6379/0]

Prints microseconds per request for the in-memory moving window (and for Redis when given):
CPU (process time, which other load on the machine does not inflate) and wall clock (which
includes the Redis round trips).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from types import SimpleNamespace
from typing import Any

from starlette.requests import Request

from retrace_server.auth.identity import CurrentUser
from retrace_server.config import Settings
from retrace_server.ratelimit.enforce import close_rate_limits, limit_user, make_rate_limits
from retrace_server.ratelimit.errors import RateLimited


def _request(app: Any, method: str, path: str) -> Request:
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [],
        "app": app,
        "client": ("127.0.0.1", 50000),
        "state": {"response_headers": {}},
    }
    return Request(scope)


async def _run(app: Any, users: list[CurrentUser], requests: int, method: str) -> tuple[float, float, int]:
    refused = 0
    cpu_started, wall_started = time.process_time(), time.perf_counter()
    for i in range(requests):
        try:
            user = users[i % len(users)]
            await limit_user(_request(app, method, "/api/v1/traces"), user_id=user.id, tier=user.tier)
        except RateLimited:
            refused += 1
    cpu = (time.process_time() - cpu_started) / requests * 1e6
    wall = (time.perf_counter() - wall_started) / requests * 1e6
    return cpu, wall, refused


async def _baseline(app: Any, users: list[CurrentUser], requests: int) -> float:
    """Building the request object alone, to subtract from the figures above."""
    started = time.process_time()
    for i in range(requests):
        _request(app, "GET", "/api/v1/traces")
        users[i % len(users)]
    return (time.process_time() - started) / requests * 1e6


async def bench(label: str, settings: Settings, requests: int) -> None:
    limits = make_rate_limits(settings)
    app = SimpleNamespace(state=SimpleNamespace(rate_limits=limits))
    run = uuid.uuid4().hex[:6]
    many = [CurrentUser(id=f"{run}-u{i}", tier="free", auth_method="api_key") for i in range(10_000)]
    hot = [CurrentUser(id=f"{run}-hot", tier="pro", auth_method="api_key")]
    base = await _baseline(app, many, requests)
    print(f"{label}: building the request object alone: {base:.2f} us CPU")
    for name, users, method in (
        ("10,000 users, reads (free, 300/min)", many, "GET"),
        ("1 user, reads up to the Pro limit then refused", hot, "GET"),
        ("1 user, writes, refused (429 path)", hot, "POST"),
    ):
        cpu, wall, refused = await _run(app, users, requests, method)
        print(
            f"{label}: {name}: {cpu:.1f} us CPU, {wall:.1f} us wall per request ({refused}/{requests} 429s)"
        )
    await close_rate_limits(limits)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--redis", default=None, help="also measure the Redis-shared limiter at this URL")
    args = parser.parse_args()
    settings = Settings(_env_file=None, rate_limit_enabled=True)
    asyncio.run(bench("memory", settings, args.requests))
    if args.redis:
        redis_settings = settings.model_copy(update={"redis_url": args.redis})
        asyncio.run(bench("redis", redis_settings, min(args.requests, 5_000)))


if __name__ == "__main__":
    main()
