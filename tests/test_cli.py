"""The command line as a user runs it: keys from the shell, `serve` processes sharing a database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from tests.support.server import free_port, wait_for_health

CLI = [sys.executable, "-m", "retrace_server"]


def _env(database_url: str) -> dict[str, str]:
    return {**os.environ, "RETRACE_DATABASE_URL": database_url, "RETRACE_RATE_LIMIT_ENABLED": "false"}


def _keys_create(database_url: str, user: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "keys", "create", "--user", user, *extra],
        env=_env(database_url),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@dataclass
class ServeProcess:
    url: str
    output: str = ""


@contextmanager
def _serve(database_url: str) -> Iterator[ServeProcess]:
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", str(port)],
        env={**_env(database_url), "RETRACE_INDEXER_ENABLED": "false", "RETRACE_EMBEDDER": "none"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    served = ServeProcess(url=f"http://127.0.0.1:{port}")
    try:
        wait_for_health(served.url, proc)
        yield served
    finally:
        proc.terminate()
        served.output, _ = proc.communicate(timeout=30)


def test_keys_create_prints_only_the_key(database_url: str) -> None:
    done = _keys_create(database_url, "cli-alice", "--tier", "pro")
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"rt_[A-Za-z0-9_-]{40,}\n", done.stdout)
    again = _keys_create(database_url, "cli-alice")
    assert again.stdout != done.stdout
    bad = _keys_create(database_url, "cli-alice", "--tier", "gold")
    assert bad.returncode != 0 and "free" in bad.stderr and bad.stdout == ""


def test_two_serve_processes_share_one_database(database_url: str) -> None:
    key = _keys_create(database_url, "cli-bob").stdout.strip()
    headers = {"x-retrace-key": key}
    with _serve(database_url) as one, _serve(database_url) as two:
        first, second = one.url, two.url
        created = httpx.post(
            f"{first}/api/v1/traces", json={"id": "shared-trace", "spans": [{"id": "a"}]}, headers=headers
        )
        assert created.status_code == 201, created.text
        patched = httpx.patch(
            f"{second}/api/v1/traces/shared-trace",
            json={"status": "completed", "spans": [{"id": "b"}]},
            headers=headers,
        )
        assert patched.status_code == 200 and patched.json()["span_count"] == 2
        fetched = httpx.get(
            f"{first}/api/v1/traces/shared-trace", headers={**headers, "x-request-id": "cli-req-1"}
        )
        assert fetched.json()["status"] == "completed"
    # One access line per request, carrying its request id.
    assert re.search(r'"GET /api/v1/traces/shared-trace" 200 .* request_id=cli-req-1', one.output)
