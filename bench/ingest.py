"""Ingest throughput: concurrent clients posting traces of N spans (~1 KB of input/output each).

python bench/ingest.py [--database-url URL] [--clients 4] [--spans 100] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from _server import cpu_seconds, rss_mb, serve
from retrace_server.search import fts_index

PROMPT = (
    "You are a support agent for an online shop. The customer asks about order {n}: it was "
    "placed on Monday, paid by card, and the tracking page has not changed for three days. "
)


def make_trace(spans: int) -> tuple[bytes, bytes]:
    trace_id = str(uuid.uuid4())
    start = datetime.now(UTC)
    body = {
        "id": trace_id,
        "name": "support-agent",
        "status": "completed",
        "started_at": start.isoformat(),
        "ended_at": (start + timedelta(seconds=spans)).isoformat(),
        "spans": [
            {
                "id": str(uuid.uuid4()),
                "trace_id": trace_id,
                "span_type": "llm_call" if i % 3 else "tool_call",
                "name": "chat" if i % 3 else "lookup_order",
                "model": "gpt-4o-mini",
                "input": {"messages": [{"role": "user", "content": (PROMPT.format(n=i) * 2)[:520]}]},
                "output": (PROMPT.format(n=i + 1) * 2)[:480],
                "input_tokens": 120,
                "output_tokens": 90,
                "cost": 0.0004,
                "duration_ms": 800,
                "started_at": (start + timedelta(seconds=i)).isoformat(),
                "ended_at": (start + timedelta(seconds=i, milliseconds=800)).isoformat(),
            }
            for i in range(spans)
        ],
    }
    return orjson.dumps(body), trace_id.encode()


async def _post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, body: bytes) -> int:
    """One keep-alive HTTP/1.1 POST; a bare client keeps the load generator's own CPU cost low."""
    writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
    status_line = await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(status_line.split()[1])


async def run_clients(
    url: str, key: str, *, clients: int, spans: int, seconds: float
) -> tuple[int, int, float]:
    host, port = url.removeprefix("http://").split(":")
    head = (
        f"POST /api/v1/traces HTTP/1.1\r\nHost: {host}\r\nx-retrace-key: {key}\r\n"
        "Content-Type: application/json\r\nContent-Length: "
    ).encode()
    bodies = [make_trace(spans) for _ in range(64)]
    sent = 0
    errors = 0
    stop_at = time.perf_counter() + seconds

    async def client(index: int) -> None:
        nonlocal sent, errors
        reader, writer = await asyncio.open_connection(host, int(port))
        n = index
        while time.perf_counter() < stop_at:
            # A fresh trace id each time, in a prepared body (its spans name it too).
            template, trace_id = bodies[n % len(bodies)]
            body = template.replace(trace_id, f"{n:08d}-{uuid.uuid4().hex[:12]}".encode())
            n += clients
            status = await _post(reader, writer, head, body)
            if status == 201:
                sent += 1
            else:
                errors += 1
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    return sent, errors, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=None, help="default: a new SQLite file")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--spans", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--indexer", action="store_true", help="run the span indexer while ingesting")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{tmp}/ingest.db"
        env = {"RETRACE_INDEXER_ENABLED": "true" if args.indexer else "false"}
        if not args.indexer:
            env["RETRACE_EMBEDDER"] = "none"
        with serve(url, env=env) as server:
            idle_rss = rss_mb(server.pid)
            asyncio.run(
                run_clients(server.url, server.key, clients=args.clients, spans=args.spans, seconds=2)
            )
            cpu_before = cpu_seconds(server.pid)
            traces, errors, elapsed = asyncio.run(
                run_clients(
                    server.url, server.key, clients=args.clients, spans=args.spans, seconds=args.seconds
                )
            )
            server_cpu = cpu_seconds(server.pid) - cpu_before
            busy_rss = rss_mb(server.pid)
            files = _sqlite_files_mb(url)
            backlog = _full_text_backlog(url)
    backend = url.split(":", 1)[0]
    indexer = "on" if args.indexer else "off"
    print(f"backend={backend} clients={args.clients} spans/trace={args.spans} indexer={indexer}")
    print(f"traces={traces} errors={errors} seconds={elapsed:.1f}")
    print(f"ingest: {traces * args.spans / elapsed:,.0f} spans/s ({traces / elapsed:,.1f} traces/s)")
    print(f"server: {server_cpu / elapsed:.0%} of one core")
    print(f"server RSS: idle {idle_rss:.0f} MB, loaded {busy_rss:.0f} MB")
    if files:
        print(f"SQLite files after the run: database {files[0]:,.0f} MB, write-ahead log {files[1]:,.0f} MB")
    if backlog is not None:
        print(f"spans waiting for full-text indexing at the end: {backlog:,}")


def _sqlite_path(url: str) -> str | None:
    return url.split("///", 1)[1] if url.startswith("sqlite") else None


def _full_text_backlog(url: str) -> int | None:
    """How far full-text indexing (which runs beside ingestion) trails the stored spans."""
    database = _sqlite_path(url)
    if database is None:
        return None
    with contextlib.closing(fts_index.connect(database)) as index:
        (pending,) = index.execute(
            "SELECT (SELECT coalesce(max(pk), 0) FROM data.spans) - indexed_through FROM spans_fts_progress"
        ).fetchone()
    return int(pending)


def _sqlite_files_mb(url: str) -> tuple[float, float] | None:
    database = _sqlite_path(url)
    if database is None:
        return None
    path = Path(database)
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size / 2**20, (wal.stat().st_size / 2**20 if wal.exists() else 0.0)


if __name__ == "__main__":
    main()
