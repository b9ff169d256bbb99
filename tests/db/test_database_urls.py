"""The database URLs people write start a server: the async drivers are the server's business."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from retrace_server.config import Settings, async_database_url
from tests.support.server import free_port, fresh_database, wait_for_health

POSTGRES_URL = os.environ.get("RETRACE_TEST_POSTGRES_URL")
CLI = [sys.executable, "-m", "retrace_server"]
needs_postgres = pytest.mark.skipif(not POSTGRES_URL, reason="RETRACE_TEST_POSTGRES_URL is not set")


@pytest.mark.parametrize(
    ("written", "used"),
    [
        ("sqlite:///data/retrace.db", "sqlite+aiosqlite:///data/retrace.db"),
        ("sqlite:////srv/retrace.db", "sqlite+aiosqlite:////srv/retrace.db"),
        ("sqlite+aiosqlite:///./retrace.db", "sqlite+aiosqlite:///./retrace.db"),
        ("postgresql://app@db:5432/retrace", "postgresql+asyncpg://app@db:5432/retrace"),
        ("postgres://app:s%40cret@db/retrace", "postgresql+asyncpg://app:s%40cret@db/retrace"),
        ("postgresql+psycopg2://app@db/retrace", "postgresql+asyncpg://app@db/retrace"),
        ("postgresql+asyncpg://app@db/retrace", "postgresql+asyncpg://app@db/retrace"),
        ("postgres://app@db/retrace?sslmode=require", "postgresql+asyncpg://app@db/retrace?ssl=require"),
    ],
)
def test_urls_get_the_async_driver(written: str, used: str) -> None:
    assert async_database_url(written) == used
    assert Settings(_env_file=None, database_url=written).database_url == used


def test_an_unknown_database_is_refused_without_echoing_the_password() -> None:
    with pytest.raises(ValueError, match="postgresql://user@host/db") as refused:
        Settings(_env_file=None, database_url="mysql://root:hunter2@db/retrace")
    assert "hunter2" not in str(refused.value)


def _env(database_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "RETRACE_DATABASE_URL": database_url,
        "RETRACE_RATE_LIMIT_ENABLED": "false",
        "RETRACE_INDEXER_ENABLED": "false",
        "RETRACE_EMBEDDER": "none",
    }


@contextmanager
def _serving(database_url: str) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", str(port)],
        env=_env(database_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, proc)
        yield url
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def _serves_and_stores(database_url: str) -> None:
    """`keys create` and `serve` both run on the URL, and a trace goes in and comes back out."""
    made = subprocess.run(
        [*CLI, "keys", "create", "--user", f"url-{uuid.uuid4().hex[:8]}"],
        env=_env(database_url),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    headers = {"x-retrace-key": made.stdout.strip()}
    with _serving(database_url) as url:
        trace_id = f"url-{uuid.uuid4().hex}"
        created = httpx.post(
            f"{url}/api/v1/traces", json={"id": trace_id, "spans": [{"id": "s1"}]}, headers=headers
        )
        assert created.status_code == 201, created.text
        assert httpx.get(f"{url}/api/v1/traces/{trace_id}", headers=headers).json()["span_count"] == 1


def test_serve_on_a_plain_sqlite_url(tmp_path: Path) -> None:
    _serves_and_stores(f"sqlite:///{tmp_path}/plain.db")
    assert (tmp_path / "plain.db").exists()


@needs_postgres
@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_serve_on_a_plain_postgres_url(scheme: str, tmp_path: Path) -> None:
    with fresh_database("postgres", str(tmp_path), POSTGRES_URL) as url:
        plain = url.replace("postgresql+asyncpg://", f"{scheme}://", 1)
        assert "+" not in plain.split("://")[0]
        _serves_and_stores(plain + "?sslmode=disable")
