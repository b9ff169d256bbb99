"""Two server processes sharing one Redis enforce one limit together."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import REDIS_URL
from tests.support.server import RunningServer, create_user, free_port, wait_for_health

pytestmark = pytest.mark.skipif(not REDIS_URL, reason="RETRACE_TEST_REDIS_URL is not set")


@contextlib.contextmanager
def server_process(database_url: str, redis_url: str, workdir: Path) -> Iterator[str]:
    """`retrace-server serve` in its own process, configured through the environment."""
    port = free_port()
    env = {
        **os.environ,
        "RETRACE_DATABASE_URL": database_url,
        "RETRACE_REDIS_URL": redis_url,
        "RETRACE_RATE_LIMIT_ENABLED": "true",
        "RETRACE_RATE_LIMIT_FREE_WRITE": "4",
        "RETRACE_RATE_LIMIT_FREE_READ": "50",
        "RETRACE_EMBEDDER": "none",
        "RETRACE_INDEXER_ENABLED": "false",
        "RETRACE_LOG_LEVEL": "warning",
    }
    command = [sys.executable, "-m", "retrace_server", "serve", "--port", str(port)]
    process = subprocess.Popen(
        command, env=env, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_two_processes_share_one_limit(server: RunningServer, tmp_path: Path) -> None:
    assert REDIS_URL is not None
    user = create_user(server, user_id=f"shared-{uuid.uuid4().hex[:8]}")
    db_url = server.settings.database_url
    with (
        server_process(db_url, REDIS_URL, tmp_path) as first,
        server_process(db_url, REDIS_URL, tmp_path) as second,
    ):
        headers = {"x-retrace-key": user.key}
        answers = []
        for i in range(6):
            url = first if i % 2 == 0 else second
            trace = {"id": str(uuid.uuid4()), "started_at": "2026-11-28T10:00:00Z"}
            answers.append(httpx.post(f"{url}/api/v1/traces", json=trace, headers=headers, timeout=30))
    assert [a.status_code for a in answers] == [201, 201, 201, 201, 429, 429]
    assert [a.headers["x-ratelimit-remaining"] for a in answers[:4]] == ["3", "2", "1", "0"]
    assert int(answers[4].headers["retry-after"]) >= 1
