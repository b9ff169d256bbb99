"""Latency of `POST /api/v1/enforcement/check`, the guardrail the SDK calls after every step.

    python bench/enforcement.py [--requests N] [--concurrency C] [--database-url URL]

Starts `retrace-server serve` on its shipped defaults (SQLite in a temporary directory unless
`--database-url` is given), gives one user 100 policies of the five kinds, and times checks as
the official SDK sends them: runs of 50 steps, each a new span, every third a tool call with an
arguments hash. The target is p99 <= 5 ms with 100 policies.

The client is a bare keep-alive socket (`_load.BareConnection`), so the figures are the server's
and the loopback's, not an HTTP library's. Prints p50/p95/p99/max in milliseconds for:
- `GET /health`: the same HTTP stack with nothing to do (the ceiling);
- a check by a user without policies (authentication and one indexed read);
- a check with 100 policies of which 5 apply to the run (policies scoped to other projects);
- a check with 100 policies that all apply to the run (none trips, so every one is judged);
- that check again while 4 other clients ingest traces of 100 spans as fast as the server takes
  them (`--ingest-traces`; 0 skips it), beside the ingestion's own spans/s.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import orjson

from _load import BareConnection, run_clients
from _server import percentile, serve, settings_line
from ingest import make_traces

KINDS = ("run_budget", "period_budget", "tool_loop", "tool_deny", "tool_approval")


def _policy(kind: str, i: int, project: str | None) -> dict[str, Any]:
    base: dict[str, Any] = {"name": f"{kind} #{i}", "kind": kind}
    if project is not None:
        base["project_id"] = project
    if kind == "run_budget":
        return {**base, "max_usd": 50.0 + i, "max_tokens": 5_000_000, "max_steps": 100_000}
    if kind == "period_budget":
        return {**base, "period": "day" if i % 2 else "month", "max_usd": 10_000.0 + i}
    if kind == "tool_loop":
        return {**base, "max_repeats": 1_000 + i}
    if kind == "tool_deny":
        return {**base, "tools": [f"drop_table_{i}", f"wire_money_{i}", "rm_rf"]}
    return {**base, "tools": [f"refund_order_{i}", f"delete_account_{i}"], "timeout_s": 600}


def _make_user(url: str, database_url: str, user_id: str, policies: list[dict[str, Any]]) -> str:
    env = {**os.environ, "RETRACE_DATABASE_URL": database_url}
    key = subprocess.run(
        [sys.executable, "-m", "retrace_server", "keys", "create", "--user", user_id],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    with httpx.Client(base_url=url, headers={"x-retrace-key": key}, timeout=30) as client:
        for policy in policies:
            r = client.post("/api/v1/enforcement/policies", json=policy)
            r.raise_for_status()
    return key


def _step_bodies(project: str) -> Callable[[], dict[str, Any]]:
    """The SDK's check bodies: a run of 50 steps, then the next run."""
    counter = itertools.count()
    lock = threading.Lock()
    state = {"run": str(uuid.uuid4())}

    def next_body() -> dict[str, Any]:
        with lock:
            n = next(counter)
            if n % 50 == 0:
                state["run"] = str(uuid.uuid4())
            run = state["run"]
        body: dict[str, Any] = {
            "run_id": run,
            "trace_id": run,
            "span_id": str(uuid.uuid4()),
            "project_id": project,
            "proposed_tokens": 350 + n % 200,
            "proposed_usd": 0.0011,
        }
        if n % 3 == 2:
            body.update(
                tool_name=("search", "lookup_order", "send_email")[n % 3], tool_args_hash=f"{n % 7:032x}"
            )
        return body

    return next_body


def _measure(
    url: str,
    key: str | None,
    path: str,
    body: Callable[[], dict[str, Any]] | None,
    *,
    requests: int,
    workers: int,
) -> list[float]:
    headers = {"x-retrace-key": key} if key else {}
    connections = [BareConnection(url, headers) for _ in range(workers)]
    latencies: list[float] = []
    lock = threading.Lock()

    def send(connection: BareConnection) -> tuple[int, bytes]:
        if body is None:
            return connection.request("GET", path)
        return connection.request("POST", path, orjson.dumps(body()))

    def work(worker: int) -> None:
        connection = connections[worker]
        mine: list[float] = []
        for _ in range(requests // workers):
            started = time.perf_counter()
            status, answer = send(connection)
            mine.append((time.perf_counter() - started) * 1000)
            if status != 200:
                raise RuntimeError(f"{path} answered {status}: {answer.decode()}")
        with lock:
            latencies.extend(mine)

    # Warm up each connection (and the server's policy cache) before timing.
    for connection in connections:
        send(connection)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(work, range(workers)))
    for connection in connections:
        connection.close()
    return latencies


def _under_ingest(url: str, key: str, checker_key: str, traces: int) -> tuple[list[float], float]:
    """Checks sent one after another while 4 clients ingest `traces` traces of 100 spans; the
    checks' latencies and the ingestion's spans/s."""
    bodies = make_traces(traces, 100)
    stop = threading.Event()
    latencies: list[float] = []

    def check_in_a_loop() -> None:
        connection = BareConnection(url, {"x-retrace-key": checker_key})
        next_body = _step_bodies("project-bench")
        while not stop.is_set():
            started = time.perf_counter()
            status, answer = connection.request(
                "POST", "/api/v1/enforcement/check", orjson.dumps(next_body())
            )
            latencies.append((time.perf_counter() - started) * 1000)
            if status != 200:
                raise RuntimeError(f"the check answered {status}: {answer.decode()}")
        connection.close()

    checker = threading.Thread(target=check_in_a_loop)
    checker.start()
    try:
        stored, _, seconds = asyncio.run(
            run_clients(
                url,
                key,
                bodies,
                clients=4,
                path="/api/v1/traces",
                content_type="application/json",
                stored_when=lambda status, _answer: status == 201,
            )
        )
    finally:
        stop.set()
        checker.join()
    return latencies, stored * 100 / seconds


def _report(label: str, latencies: list[float]) -> None:
    print(
        f"{label:<46} n={len(latencies):>6}  p50={percentile(latencies, 50):6.2f}  "
        f"p95={percentile(latencies, 95):6.2f}  p99={percentile(latencies, 99):6.2f}  "
        f"max={max(latencies):7.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=5000, help="checks timed per configuration")
    parser.add_argument("--concurrency", type=int, default=1, help="clients sending checks at once")
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temporary directory")
    parser.add_argument(
        "--ingest-traces", type=int, default=400, help="traces ingested during the last measure (0: skip it)"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        database_url = args.database_url or f"sqlite+aiosqlite:///{tmp}/bench-enforcement.db"
        with serve(database_url) as server:
            suffix = uuid.uuid4().hex[:8]
            scoped = [_policy(KINDS[i % 5], i, None if i < 5 else f"project-{i % 20}") for i in range(100)]
            everywhere = [_policy(KINDS[i % 5], i, None) for i in range(100)]
            bare = _make_user(server.url, database_url, f"bench-bare-{suffix}", [])
            five = _make_user(server.url, database_url, f"bench-five-{suffix}", scoped)
            hundred = _make_user(server.url, database_url, f"bench-all-{suffix}", everywhere)

            print(f"database: {database_url.split('://', 1)[0]}  server: 1 process")
            print(settings_line(server.env))
            print(f"requests per configuration: {args.requests}  concurrent clients: {args.concurrency}")
            print("latency in ms, measured by the client (bare socket, HTTP/1.1 keep-alive)")
            measure = {"requests": args.requests, "workers": args.concurrency}
            _report(
                "GET /health (ceiling: the HTTP stack alone)",
                _measure(server.url, None, "/health", None, **measure),
            )
            check = "/api/v1/enforcement/check"
            project = "project-bench"
            _report("check, no policies", _measure(server.url, bare, check, _step_bodies(project), **measure))
            _report(
                "check, 100 policies, 5 apply",
                _measure(server.url, five, check, _step_bodies("project-bench"), **measure),
            )
            _report(
                "check, 100 policies, all 100 apply",
                _measure(server.url, hundred, check, _step_bodies(project), **measure),
            )
            if args.ingest_traces:
                latencies, spans_per_s = _under_ingest(server.url, server.key, hundred, args.ingest_traces)
                _report("check, all 100 apply, during ingestion", latencies)
                print(
                    f"  (4 clients ingested {args.ingest_traces} traces of 100 spans "
                    f"at {spans_per_s:,.0f} spans/s)"
                )
            print("target: p99 <= 5 ms with 100 policies")


if __name__ == "__main__":
    main()
