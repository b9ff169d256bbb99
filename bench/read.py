"""Read latency: one trace of 1,000 spans, and trace lists over 100,000 stored traces.

    python bench/read.py [--database-url URL] [--traces 100000] [--requests 200]

The 100,000 list rows are bulk-inserted straight into the database (setting up through the
API would take most of the run); the 1,000-span trace goes through the API. The server runs on
its shipped defaults; timing starts once its indexer has embedded that trace (reads of a quiet
server, not reads racing the embedder). Requests go over a bare keep-alive socket
(`_load.BareConnection`), so the figures are the server's and the loopback's; `GET /health` is
timed beside them as the ceiling of the HTTP stack.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import httpx
import orjson
from sqlalchemy import insert

from _load import BareConnection
from _server import percentile, serve, settings_line
from ingest import make_traces
from retrace_server.db.engine import make_engine
from retrace_server.traces.models import Trace

STATUSES = ("running", "completed", "failed")


async def bulk_traces(database_url: str, user_id: str, count: int) -> None:
    engine = make_engine(database_url)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    try:
        for offset in range(0, count, 5000):
            rows = [
                {
                    "id": str(uuid.uuid4()),
                    "user_id": user_id,
                    "name": f"{random.choice(['support', 'refund', 'search', 'coding'])}-agent-{i % 97}",
                    "status": STATUSES[i % 3],
                    "metadata_": {},
                    "session_id": f"session-{i % 1000}",
                    "lossy": False,
                    "started_at": start + timedelta(seconds=i * 30),
                    "total_tokens": 1000,
                    "total_cost": 0.01,
                    "total_duration_ms": 5000,
                    "span_count": 20,
                    "created_at": start,
                    "updated_at": start,
                }
                for i in range(offset, min(count, offset + 5000))
            ]
            async with engine.begin() as conn:
                await conn.execute(insert(Trace), rows)
    finally:
        await engine.dispose()


def timed(connection: BareConnection, path: str, params: dict[str, str | int], n: int) -> list[float]:
    target = f"{path}?{urlencode(params)}" if params else path
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        status, answer = connection.request("GET", target)
        samples.append((time.perf_counter() - t0) * 1000)
        assert status == 200, answer.decode()
    return samples


def wait_for_indexer(client: httpx.Client, since: datetime, timeout_s: float = 900) -> None:
    """Until the semantic backlog, read after `since`, is empty (no embedder configured: at once)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = client.get("/health").json().get("indexing")
        if status is None:
            return
        checked_at = datetime.fromisoformat(status["checked_at"].replace("Z", "+00:00"))
        if checked_at > since and not status["backlog"]:
            return
        time.sleep(1)
    raise SystemExit(f"the indexer still had a backlog after {timeout_s:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=None, help="default: a new SQLite file")
    parser.add_argument("--traces", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{tmp}/read.db"
        with serve(url, user="reader") as srv:
            print(settings_line(srv.env))
            client = httpx.Client(base_url=srv.url, headers={"x-retrace-key": srv.key}, timeout=60)
            bare = BareConnection(srv.url, {"x-retrace-key": srv.key})
            # A 1,000-span trace, posted in batches of 100 through the API.
            posting = datetime.now(UTC)
            big_id = str(uuid.uuid4())
            first, *rest = (orjson.loads(body) for body in make_traces(10, 100))
            first["id"] = big_id
            r = client.post(
                "/api/v1/traces", content=orjson.dumps(first), headers={"content-type": "application/json"}
            )
            assert r.status_code == 201, r.text
            for more in rest:
                r = client.patch(
                    f"/api/v1/traces/{big_id}",
                    content=orjson.dumps({"spans": more["spans"]}),
                    headers={"content-type": "application/json"},
                )
                assert r.status_code == 200, r.text
            assert client.get(f"/api/v1/traces/{big_id}").json()["span_count"] == 1000
            wait_for_indexer(client, since=posting + timedelta(seconds=1))
            ceiling = timed(bare, "/health", {}, args.requests)
            print(
                f"GET /health (ceiling): p50 {percentile(ceiling, 50):.1f} ms, "
                f"p99 {percentile(ceiling, 99):.1f} ms"
            )
            one = timed(bare, f"/api/v1/traces/{big_id}", {}, args.requests)
            p50, p99 = percentile(one, 50), percentile(one, 99)
            print(f"GET /api/v1/traces/{{id}} (1,000 spans): p50 {p50:.1f} ms, p99 {p99:.1f} ms")

            asyncio.run(bulk_traces(url, "reader", args.traces))
            bare.close()  # idle past the server's keep-alive timeout while the rows went in
            bare = BareConnection(srv.url, {"x-retrace-key": srv.key})
            total = client.get("/api/v1/traces", params={"limit": 1}).json()["total"]
            print(f"GET /api/v1/traces over {total:,} traces (p50 / p99, {args.requests} requests each):")
            cases: dict[str, dict[str, str | int]] = {
                "first page": {},
                "page 100 (offset 2,000)": {"offset": 2000},
                "last page (offset 99,980)": {"offset": total - 20},
                "status=failed": {"status": "failed"},
                "status=failed, offset 30,000": {"status": "failed", "offset": 30000},
                "session_id": {"session_id": "session-42"},
                "name substring": {"name": "refund-agent-1"},
                "since/until (one day)": {"since": "2026-01-10T00:00:00Z", "until": "2026-01-11T00:00:00Z"},
                "limit=100": {"limit": 100},
            }
            for label, params in cases.items():
                s = timed(bare, "/api/v1/traces", params, args.requests)
                print(f"  {label:32s} p50 {percentile(s, 50):6.1f} ms   p99 {percentile(s, 99):6.1f} ms")
            client.close()
            bare.close()


if __name__ == "__main__":
    main()
