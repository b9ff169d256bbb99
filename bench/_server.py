"""Starts `retrace-server serve` as a user would, for the benchmarks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx


@dataclass
class BenchServer:
    url: str
    key: str
    pid: int


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


@contextmanager
def serve(
    database_url: str, *, env: dict[str, str] | None = None, user: str = "bench"
) -> Iterator[BenchServer]:
    """A server process on a free port over `database_url`, with a fresh key for `user`."""
    full_env = {
        **os.environ,
        "RETRACE_DATABASE_URL": database_url,
        "RETRACE_RATE_LIMIT_ENABLED": "false",
        "RETRACE_LOG_LEVEL": "warning",
        **(env or {}),
    }
    cli = [sys.executable, "-m", "retrace_server"]
    key = subprocess.run(
        [*cli, "keys", "create", "--user", user], env=full_env, capture_output=True, text=True, check=True
    ).stdout.strip()
    port = _free_port()
    proc = subprocess.Popen([*cli, "serve", "--port", str(port)], env=full_env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.1)
        yield BenchServer(url=url, key=key, pid=proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]
