"""Ingest throughput: concurrent clients posting traces of N spans (~1 KB of distinct chat text
each), against the server on its shipped defaults and, in the same run, against the ceiling: a
no-op route on the same HTTP stack taking the same requests.

    python bench/ingest.py [--database-url URL] [--clients 4] [--spans 100] [--traces 4000] [--rounds 1]

Every body is made before timing starts (text is never reused, so search and embedding caches
get no free hits), and the load generator is a bare HTTP/1.1 client, so that the figures measure
the servers rather than the client.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

import _load as load
from _server import BenchServer, ceiling, cpu_seconds, rss_mb, serve, settings_line
from retrace_server.search import fts_index
from text import ChatText

SYSTEM = "You are the support agent of an online shop. Be brief, check orders with tools, never guess."


def make_traces(count: int, spans: int) -> list[bytes]:
    text = ChatText()
    start = datetime.now(UTC)
    bodies = []
    for _ in range(count):
        trace_id = str(uuid.uuid4())
        body = {
            "id": trace_id,
            "name": "support-agent",
            "status": "completed",
            "started_at": start.isoformat(),
            "ended_at": (start + timedelta(seconds=spans)).isoformat(),
            "spans": [
                {
                    "id": str(uuid.uuid4()),
                    "span_type": "llm_call" if i % 3 else "tool_call",
                    "name": "chat" if i % 3 else text.tool(),
                    "model": "gpt-4o-mini",
                    "input": {
                        "messages": [
                            {"role": "system", "content": SYSTEM},
                            {"role": "user", "content": text.message(420)},
                        ]
                    },
                    "output": text.message(480),
                    "input_tokens": 120,
                    "output_tokens": 90,
                    "duration_ms": 800,
                    "started_at": (start + timedelta(seconds=i)).isoformat(),
                    "ended_at": (start + timedelta(seconds=i, milliseconds=800)).isoformat(),
                }
                for i in range(spans)
            ],
        }
        bodies.append(orjson.dumps(body))
    return bodies


async def run_clients(url: str, key: str, bodies: list[bytes], *, clients: int) -> tuple[int, int, float]:
    """Posts every body once, over `clients` connections: (stored, refused, seconds)."""
    return await load.run_clients(
        url,
        key,
        bodies,
        clients=clients,
        path="/api/v1/traces",
        content_type="application/json",
        stored_when=lambda status, _answer: status == 201,
    )


def postgres_cpu_seconds() -> float:
    """CPU time of every PostgreSQL process on this machine (the database's share of the work)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{entry}/comm").read_text().strip() == "postgres":
                    total += cpu_seconds(int(entry))
    return total


def measure(
    target: BenchServer, bodies: list[bytes], *, clients: int, spans: int, postgres: bool
) -> dict[str, float]:
    cpu_before, db_before = cpu_seconds(target.pid), postgres_cpu_seconds() if postgres else 0.0
    client_before = time.process_time()
    stored, refused, elapsed = asyncio.run(run_clients(target.url, target.key, bodies, clients=clients))
    span_count = stored * spans
    thousands = max(span_count / 1000, 1e-9)
    figures = {
        "spans_per_s": span_count / elapsed,
        "traces_per_s": stored / elapsed,
        "refused": refused,
        "seconds": elapsed,
        "server_cpu_per_1k": (cpu_seconds(target.pid) - cpu_before) / thousands,
        "server_busy": (cpu_seconds(target.pid) - cpu_before) / elapsed,
        "client_cpu_per_1k": (time.process_time() - client_before) / thousands,
    }
    if postgres:
        figures["postgres_cpu_per_1k"] = (postgres_cpu_seconds() - db_before) / thousands
    return figures


def _result_line(name: str, figures: dict[str, float]) -> str:
    line = (
        f"{name:8s} {figures['spans_per_s']:>9,.0f} spans/s ({figures['traces_per_s']:,.1f} traces/s, "
        f"{figures['refused']:.0f} refused) | server CPU {figures['server_cpu_per_1k'] * 1000:.0f} ms "
        f"per 1k spans ({figures['server_busy']:.0%} of a core)"
    )
    if "postgres_cpu_per_1k" in figures:
        line += f" | PostgreSQL CPU {figures['postgres_cpu_per_1k'] * 1000:.0f} ms per 1k spans"
    return line + f" | client {figures['client_cpu_per_1k'] * 1000:.0f} ms per 1k"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=None, help="default: a new SQLite file")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--spans", type=int, default=100)
    parser.add_argument("--traces", type=int, default=4000, help="traces per measurement")
    parser.add_argument("--rounds", type=int, default=1, help="server and ceiling, alternately")
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="a RETRACE_ setting to change"
    )
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.set)

    print(f"making {args.traces * (args.rounds + 1):,} traces of {args.spans} spans ...", file=sys.stderr)
    bodies = make_traces(args.traces * (args.rounds + 1), args.spans)
    size_kb = sum(map(len, bodies[:50])) / 50 / 1024
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{tmp}/ingest.db"
        postgres = url.startswith("postgres")
        with serve(url, env=env) as server, ceiling() as no_op:
            idle_rss = rss_mb(server.pid)
            asyncio.run(
                run_clients(server.url, server.key, bodies[: args.traces // 20], clients=args.clients)
            )
            asyncio.run(run_clients(no_op.url, no_op.key, bodies[: args.traces // 20], clients=args.clients))
            results: list[tuple[str, dict[str, float]]] = []
            for round_ in range(args.rounds):
                batch = bodies[(round_ + 1) * args.traces : (round_ + 2) * args.traces]
                results.append(
                    (
                        "server",
                        measure(server, batch, clients=args.clients, spans=args.spans, postgres=postgres),
                    )
                )
                results.append(
                    ("ceiling", measure(no_op, batch, clients=args.clients, spans=args.spans, postgres=False))
                )
            busy_rss = rss_mb(server.pid)
            log_lines = server.log_lines()
            backlog = _full_text_backlog(url)
            files = _sqlite_files_mb(url)

    backend = url.split(":", 1)[0].split("+")[0]
    print(f"backend={backend} clients={args.clients} spans/trace={args.spans} body={size_kb:.0f} KB", end=" ")
    print(f"traces/round={args.traces} rounds={args.rounds}")
    print(settings_line(server.env))
    for name, figures in results:
        print(_result_line(name, figures))
    served = [f["spans_per_s"] for name, f in results if name == "server"]
    ceilings = [f["spans_per_s"] for name, f in results if name == "ceiling"]
    mean_served, mean_ceiling = sum(served) / len(served), sum(ceilings) / len(ceilings)
    print(
        f"ingest: {mean_served:,.0f} spans/s = {mean_served / mean_ceiling:.0%} of the ceiling "
        f"({mean_ceiling:,.0f} spans/s, a no-op route on the same HTTP stack, same load)"
    )
    print(f"server RSS: idle {idle_rss:.0f} MB, loaded {busy_rss:.0f} MB; log lines written: {log_lines:,}")
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
