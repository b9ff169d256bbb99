"""Search quality on a labelled set: recall@5 and MRR of lexical, semantic and hybrid ranking.

Starts `retrace-server serve` (real model, indexer on) over a new SQLite database, stores 226
agent-like spans, waits for the indexer, then asks 50 queries through POST /api/v1/search:
40 paraphrases that share (almost) no word with the span they should find, and 10 exact
identifiers (error codes, tool names, ids).

    python bench/search_quality.py

`RETRACE_LOCAL_EMBEDDING=full` measures the full-precision embedder of earlier releases.
"""

from __future__ import annotations

import os
import random
import sqlite3
import tempfile
import time
import uuid
from typing import Any

import httpx

from _server import serve
from search_data import DISTRACTOR_TOPICS, DISTRACTORS_PER_TOPIC, IDENTIFIERS, PARAPHRASED

MODES = ("lexical", "semantic", "hybrid")


def _span(name: str, kind: str, given: str, got: str) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "span_type": kind,
        "name": name,
        "model": "gpt-4o-mini" if kind == "llm_call" else None,
        "input": {"messages": [{"role": "user", "content": given}]} if kind == "llm_call" else given,
        "output": got,
    }


def build() -> tuple[list[dict[str, Any]], list[tuple[str, str, str]]]:
    """The spans, and (query, expected span id, kind of query)."""
    spans, labelled = [], []
    for kind, rows in (("paraphrase", PARAPHRASED), ("identifier", IDENTIFIERS)):
        for name, span_type, given, got, query in rows:
            span = _span(name, span_type, given, got)
            spans.append(span)
            labelled.append((query, span["id"], kind))
    for name, span_type, given, got in DISTRACTOR_TOPICS:
        for i in range(DISTRACTORS_PER_TOPIC):
            spans.append(_span(name, span_type, given.format(i=i), got.format(i=i)))
    random.Random(7).shuffle(spans)
    return spans, labelled


def store(client: httpx.Client, spans: list[dict[str, Any]]) -> None:
    for start in range(0, len(spans), 10):
        trace = {"id": str(uuid.uuid4()), "name": "agent-run", "spans": spans[start : start + 10]}
        response = client.post("/api/v1/traces", json=trace)
        response.raise_for_status()


def wait_indexed(db_path: str) -> None:
    while True:
        with sqlite3.connect(db_path) as conn:
            if conn.execute("SELECT count(*) FROM span_index_queue").fetchone()[0] == 0:
                return
        time.sleep(0.5)


def rank_of(client: httpx.Client, query: str, expected: str, mode: str) -> int | None:
    response = client.post("/api/v1/search", json={"query": query, "mode": mode, "limit": 10})
    response.raise_for_status()
    ids = [hit["span"]["id"] for hit in response.json()["data"]]
    return ids.index(expected) + 1 if expected in ids else None


def main() -> None:
    spans, labelled = build()
    with tempfile.TemporaryDirectory() as tmp:
        db_path = f"{tmp}/quality.db"
        env = {"RETRACE_EMBEDDER": "local", "RETRACE_INDEXER_ENABLED": "true"}
        with serve(f"sqlite+aiosqlite:///{db_path}", env=env) as server:
            client = httpx.Client(base_url=server.url, headers={"x-retrace-key": server.key}, timeout=120)
            store(client, spans)
            wait_indexed(db_path)
            ranks = {
                (mode, query): rank_of(client, query, expected, mode)
                for query, expected, _ in labelled
                for mode in MODES
            }
    embedding = os.environ.get("RETRACE_LOCAL_EMBEDDING", "the default")
    print(f"spans={len(spans)} queries={len(labelled)} (paraphrased 40, identifiers 10)")
    print(f"embedder: local, RETRACE_LOCAL_EMBEDDING={embedding}")
    print(f"{'subset':<12} {'mode':<9} {'recall@5':>9} {'MRR@10':>7}")
    for subset in ("all", "paraphrase", "identifier"):
        chosen = [q for q, _, kind in labelled if subset in ("all", kind)]
        for mode in MODES:
            found = [ranks[(mode, q)] for q in chosen]
            recall = sum(1 for r in found if r is not None and r <= 5) / len(chosen)
            mrr = sum(1 / r for r in found if r is not None) / len(chosen)
            print(f"{subset:<12} {mode:<9} {recall:>9.3f} {mrr:>7.3f}")
    missed = [q for q, _, _ in labelled if (r := ranks[("hybrid", q)]) is None or r > 5]
    print("hybrid misses (not in top 5):", missed or "none")


if __name__ == "__main__":
    main()
