"""Starts `retrace-server serve` as a user would, for the benchmarks, and the ceiling beside it.

The server runs on its shipped defaults (access log, full-text indexer, embedder and indexer,
rate limiting), its log written to a file as a deployment would keep it. Only the per-minute
limits are raised, far above what the load reaches, so that the limiter still runs on every
request but never refuses one. `settings_line` says what a figure was taken with.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

UNLIMITED = "1000000000"
BENCH_ENV = {
    **{
        f"RETRACE_RATE_LIMIT_{tier}_{kind}": UNLIMITED
        for tier in ("FREE", "PRO")
        for kind in ("WRITE", "READ")
    },
    "RETRACE_RATE_LIMIT_IP": UNLIMITED,
}


@dataclass
class BenchServer:
    url: str
    key: str
    pid: int
    env: dict[str, str] = field(default_factory=dict)
    log: Path | None = None

    def log_lines(self) -> int:
        if self.log is None or not self.log.exists():
            return 0
        with self.log.open("rb") as lines:
            return sum(1 for _ in lines)


def settings_line(env: dict[str, str]) -> str:
    """The settings a figure was taken with, as a user would read them off their environment."""
    defaults = {
        "RETRACE_LOG_LEVEL": "info (access log on)",
        "RETRACE_EMBEDDER": "auto",
        "RETRACE_INDEXER_ENABLED": "true",
        "RETRACE_RATE_LIMIT_ENABLED": "true",
    }
    shown = {key: env.get(key, default) for key, default in defaults.items()}
    changed = {
        k: v for k, v in env.items() if k.startswith("RETRACE_") and k not in defaults and k not in BENCH_ENV
    }
    parts = [f"{k.removeprefix('RETRACE_').lower()}={v}" for k, v in {**shown, **changed}.items()]
    return "settings: " + " ".join(parts) + " (per-minute limits raised out of reach)"


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
    """A server process on a free port over `database_url`, with a fresh key for `user`;
    `env` departs from the defaults (say so in the figures: `settings_line`)."""
    given = {**BENCH_ENV, **(env or {})}
    full_env = {**os.environ, "RETRACE_DATABASE_URL": database_url, **given}
    cli = [sys.executable, "-m", "retrace_server"]
    key = (
        subprocess.run(
            [*cli, "keys", "create", "--user", user], env=full_env, capture_output=True, text=True, check=True
        )
        .stdout.strip()
        .split()[-1]
    )
    port = _free_port()
    with tempfile.TemporaryDirectory() as logs:
        log = Path(logs) / "server.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [*cli, "serve", "--port", str(port)], env=full_env, stdout=out, stderr=out
            )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_up(url, proc, log)
            yield BenchServer(url=url, key=key, pid=proc.pid, env=given, log=log)
        finally:
            _stop(proc)


@contextmanager
def ceiling() -> Iterator[BenchServer]:
    """The no-op server on the same HTTP stack (`_ceiling.py`)."""
    port = _free_port()
    script = Path(__file__).with_name("_ceiling.py")
    proc = subprocess.Popen([sys.executable, str(script), "--port", str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, proc, None)
        yield BenchServer(url=url, key="none", pid=proc.pid)
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """A graceful stop (the indexer may be in the middle of a batch), then a hard one."""
    proc.terminate()
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        print("the server did not stop within 120 s of SIGTERM; killing it", file=sys.stderr)
        proc.kill()
        proc.wait()


def _wait_until_up(url: str, proc: subprocess.Popen[bytes], log: Path | None) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text()[-2000:] if log is not None and log.exists() else ""
            raise RuntimeError(f"the server did not start\n{tail}")
        time.sleep(0.1)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]
