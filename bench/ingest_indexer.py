"""Ingestion throughput while the in-process indexer works, against the same server without it.

Runs the clients of bench/ingest.py (4 clients posting traces of 100 spans) against
`retrace-server serve` on a new SQLite database: once with the indexer off, once with it on and
its model already loaded (a first trace is indexed before timing), so the figure is the cost of
indexing alongside ingestion, not of the one-off model load.

    python bench/ingest_indexer.py [--seconds 15] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time

from _server import serve
from ingest import run_clients


def backlog(path: str) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM span_index_queue").fetchone()[0])


def measure(indexer: bool, *, seconds: float, rounds: int) -> list[float]:
    env = {
        "RETRACE_INDEXER_ENABLED": str(indexer).lower(),
        "RETRACE_EMBEDDER": "local" if indexer else "none",
    }
    rates = []
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/ingest.db"
        with serve(f"sqlite+aiosqlite:///{path}", env=env) as server:
            asyncio.run(run_clients(server.url, server.key, clients=1, spans=100, seconds=1))
            while indexer and backlog(path):
                time.sleep(0.5)
            for _ in range(rounds):
                traces, _errors, elapsed = asyncio.run(
                    run_clients(server.url, server.key, clients=4, spans=100, seconds=seconds)
                )
                rates.append(traces * 100 / elapsed)
                state = f", indexing backlog {backlog(path):,} spans" if indexer else ""
                print(f"indexer {'on ' if indexer else 'off'}: {rates[-1]:,.0f} spans/s{state}")
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    off = measure(False, seconds=args.seconds, rounds=args.rounds)
    on = measure(True, seconds=args.seconds, rounds=args.rounds)
    change = (sum(on) / len(on)) / (sum(off) / len(off)) - 1
    print(
        f"mean: off {sum(off) / len(off):,.0f} spans/s, on {sum(on) / len(on):,.0f} spans/s ({change:+.1%})"
    )


if __name__ == "__main__":
    main()
