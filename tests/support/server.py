"""A real server for tests: uvicorn on 127.0.0.1 in a thread, over a real database."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import uvicorn

from retrace_server.app import create_app
from retrace_server.auth.keys import issue_key
from retrace_server.config import Settings
from retrace_server.db import migrate
from retrace_server.db.engine import Database


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_health(url: str, process: subprocess.Popen[Any], *, timeout: float = 60.0) -> None:
    """Waits until a started `serve` process answers `{url}/health`; fails with its output if it exits."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        if process.poll() is not None:
            pipe = process.stdout or process.stderr
            output = pipe.read() if pipe else ""
            raise AssertionError(f"serve exited: {output.decode() if isinstance(output, bytes) else output}")
        if time.monotonic() > deadline:
            raise AssertionError(f"serve did not answer {url}/health within {timeout:g}s")
        time.sleep(0.1)


@contextlib.contextmanager
def fresh_database(backend: str, tmp_dir: str, postgres_url: str | None) -> Iterator[str]:
    """A new empty database URL: a SQLite file, or a new PostgreSQL database dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_dir}/retrace-{uuid.uuid4().hex[:8]}.db"
        return
    assert postgres_url, "RETRACE_TEST_POSTGRES_URL is not set"
    name = f"retrace_test_{uuid.uuid4().hex[:12]}"
    admin_dsn = postgres_url.replace("postgresql+asyncpg://", "postgresql://")

    async def _admin(sql: str) -> None:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    base, _, _ = postgres_url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@dataclass
class RunningServer:
    url: str
    settings: Settings
    _server: uvicorn.Server
    _thread: threading.Thread
    users: list[ApiUser] = field(default_factory=list)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)
        for user in self.users:
            user.close()


@dataclass
class ApiUser:
    """A user with an API key and an HTTP client that sends it."""

    id: str
    key: str
    client: httpx.Client

    def close(self) -> None:
        self.client.close()


def start_server(settings: Settings) -> RunningServer:
    """Migrates the database, then serves it on a free port until `.stop()`."""
    asyncio.run(migrate.upgrade(settings.database_url))
    port = free_port()
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True, name=f"retrace-test-server-{port}")
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    return RunningServer(url=f"http://127.0.0.1:{port}", settings=settings, _server=server, _thread=thread)


@contextlib.contextmanager
def running_server(settings: Settings) -> Iterator[RunningServer]:
    server = start_server(settings)
    try:
        yield server
    finally:
        server.stop()


def create_user(server: RunningServer, *, user_id: str | None = None, tier: str | None = None) -> ApiUser:
    """A new user with a fresh API key, made the way `retrace-server keys create` makes them."""
    user_id = user_id or f"user-{uuid.uuid4().hex[:10]}"

    async def _issue() -> str:
        db = Database(server.settings)
        try:
            async with db.write() as session:
                return (await issue_key(session, user_id=user_id, tier=tier)).key
        finally:
            await db.dispose()

    key = asyncio.run(_issue())
    client = httpx.Client(base_url=server.url, headers={"x-retrace-key": key}, timeout=60)
    user = ApiUser(id=user_id, key=key, client=client)
    server.users.append(user)
    return user


def run_async(coro: Any) -> Any:
    return asyncio.run(coro)
