"""Search latency at scale: POST /api/v1/search over 100,000 indexed spans and
POST /api/v1/memory/search over 10,000 memories, query embedding included.

Loads the data through the server's own services (ingestion, the indexing worker, the
embedding cache) into a new SQLite database, then times requests against `retrace-server
serve` with the real model. Targets: span search p50 <= 50 ms, p99 <= 150 ms; memory p50 <= 30 ms.

    python bench/search_latency.py [--spans 100000] [--memories 10000] [--queries 200]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
from sqlalchemy import insert

from _server import percentile, serve
from retrace_server.auth.keys import issue_key
from retrace_server.config import Settings
from retrace_server.db import migrate
from retrace_server.db.engine import Database
from retrace_server.embeddings.service import EmbeddingService, store_cache_rows
from retrace_server.embeddings.store import to_blob
from retrace_server.embeddings.worker import SpanIndexer
from retrace_server.ingest.service import Ingestor
from retrace_server.memory.models import Memory, MemoryVector
from retrace_server.memory.service import normalised_hash
from retrace_server.pricing import price_table
from retrace_server.search import fts_index
from retrace_server.traces import service as traces
from retrace_server.traces.schemas import TraceCreate

USER = "bench"
ACTIONS = [
    "refund",
    "ship",
    "cancel",
    "upgrade",
    "invoice",
    "translate",
    "summarise",
    "schedule",
    "deploy",
    "debug",
]
OBJECTS = [
    "order",
    "subscription",
    "report",
    "meeting",
    "container",
    "payment",
    "ticket",
    "contract",
    "email",
    "dataset",
]
OUTCOMES = [
    "completed without errors",
    "failed with a timeout after 30 seconds",
    "needs approval from a manager",
    "was rejected by the payment provider",
    "returned an empty result",
    "succeeded after two retries",
    "is waiting for the customer to reply",
    "raised a permission error",
]
TOOLS = [
    "lookup_order",
    "charge_card",
    "send_email",
    "run_sql",
    "http_get",
    "kubectl",
    "search_docs",
    "read_file",
]


def span_texts(rng: random.Random, unique: int) -> list[tuple[str, str, str]]:
    """(name, input, output) combinations an agent fleet would produce, `unique` of them."""
    texts: set[tuple[str, str, str]] = set()
    while len(texts) < unique:
        action, thing, outcome = rng.choice(ACTIONS), rng.choice(OBJECTS), rng.choice(OUTCOMES)
        ref = rng.randint(1000, 99999)
        texts.add(
            (
                rng.choice(TOOLS),
                f"Please {action} the {thing} {ref} for the customer",
                f"The {thing} {ref} {outcome}",
            )
        )
    return sorted(texts)


async def load_spans(ingestor: Ingestor, *, spans: int, unique: int) -> None:
    rng = random.Random(1)
    pool = span_texts(rng, unique)
    per_trace = 100
    for _ in range(spans // per_trace):
        chosen = [rng.choice(pool) for _ in range(per_trace)]
        payload = TraceCreate.model_validate(
            {
                "name": "support-agent",
                "spans": [
                    {"name": name, "span_type": "tool_call", "input": given, "output": got}
                    for name, given, got in chosen
                ],
            }
        )
        await traces.create(ingestor, user_id=USER, payload=payload)


async def index_spans(db: Database, embeddings: EmbeddingService) -> tuple[int, int, float]:
    indexer = SpanIndexer(db, embeddings, batch_size=500)
    indexed = hits = 0
    started = time.perf_counter()
    while (result := await indexer.run_once()).claimed:
        indexed += result.indexed
        hits += result.cache_hits
    return indexed, hits, time.perf_counter() - started


async def load_memories(db: Database, embeddings: EmbeddingService, *, count: int) -> None:
    rng = random.Random(2)
    subjects = ["The user", "The customer", "The team", "The project", "Our agent"]
    facts = [
        "prefers {x} answers",
        "works in the {x} timezone",
        "must never {x} without approval",
        "uses {x} for deployments",
        "asked to be reminded about {x}",
        "is allergic to {x}",
        "wants reports in {x} format",
    ]
    words = [f"{a}-{b}" for a in ACTIONS + OBJECTS for b in range(60)]
    contents = list(
        dict.fromkeys(
            f"{rng.choice(subjects)} {rng.choice(facts).format(x=rng.choice(words))}"
            for _ in range(count * 2)
        )
    )[:count]
    for start in range(0, len(contents), 1000):
        batch = contents[start : start + 1000]
        embedded = await embeddings.embed(db, batch, for_indexing=True)
        async with db.write() as session:
            await store_cache_rows(session, embedded.new_cache_rows)
            ids = [str(uuid.uuid4()) for _ in batch]
            scopes = [f"project:{i % 20}" for i in range(start, start + len(batch))]
            await session.execute(
                insert(Memory),
                [
                    {
                        "id": i,
                        "user_id": USER,
                        "scope": s,
                        "content": c,
                        "content_hash": normalised_hash(c),
                        "metadata_": {},
                    }
                    for i, s, c in zip(ids, scopes, batch, strict=True)
                ],
            )
            await session.execute(
                insert(MemoryVector),
                [
                    {"memory_id": i, "user_id": USER, "scope": s, "category": None, "vector": to_blob(v)}
                    for i, s, v in zip(ids, scopes, embedded.vectors, strict=True)
                ],
            )


async def load(url: str, *, spans: int, memories: int) -> None:
    await migrate.upgrade(url)
    settings = Settings(_env_file=None, database_url=url, embedder="local")
    db = Database(settings)
    embeddings = EmbeddingService(settings)
    try:
        async with db.write() as session:
            await issue_key(session, user_id=USER)
        started = time.perf_counter()
        await load_spans(Ingestor(db, prices=price_table(None)), spans=spans, unique=spans // 10)
        print(f"stored {spans:,} spans in {time.perf_counter() - started:.0f}s")
        started = time.perf_counter()
        with contextlib.closing(fts_index.connect(str(db.engine.url.database))) as connection:
            while fts_index.index_pending(connection):
                pass
        print(f"full-text indexed them in {time.perf_counter() - started:.1f}s")
        indexed, hits, elapsed = await index_spans(db, embeddings)
        embedded = indexed - hits
        print(
            f"indexed {indexed:,} spans in {elapsed:.0f}s: {embedded:,} distinct texts embedded "
            f"({embedded / elapsed:,.0f} texts/s, {indexed / elapsed:,.0f} spans/s), "
            f"dedupe {hits / indexed:.1%}"
        )
        started = time.perf_counter()
        await load_memories(db, embeddings, count=memories)
        print(f"stored and embedded {memories:,} memories in {time.perf_counter() - started:.0f}s")
    finally:
        embeddings.close()
        await db.dispose()


def timed(client: httpx.Client, path: str, bodies: list[dict[str, object]]) -> list[float]:
    for index in range(5):  # warm-up: the model and the vectors load once
        client.post(path, json={"query": f"warm-up {index}", "limit": 10}).raise_for_status()
    latencies = []
    for body in bodies:
        started = time.perf_counter()
        response = client.post(path, json=body)
        latencies.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        assert response.json()["data"], body
    return latencies


def report(what: str, latencies: list[float]) -> None:
    print(
        f"{what}: n={len(latencies)} p50={percentile(latencies, 50):.1f} ms "
        f"p90={percentile(latencies, 90):.1f} ms p99={percentile(latencies, 99):.1f} ms"
    )


def distinct_queries(make: Callable[[], str], count: int) -> list[dict[str, object]]:
    queries: dict[str, None] = {}
    while len(queries) < count:
        queries[make()] = None
    return [{"query": query, "limit": 10} for query in queries]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--database", help="SQLite file to keep the loaded data in (reused when it exists)")
    args = parser.parse_args()
    rng = random.Random(3)
    # Every query differs, so that none is answered from the server's cache of query vectors.
    span_queries = distinct_queries(
        lambda: (
            f"{rng.choice(ACTIONS)} {rng.choice(OBJECTS)} {rng.randint(1000, 99999)} that "
            f"{rng.choice(OUTCOMES)}"
        ),
        args.queries,
    )
    memory_queries = distinct_queries(
        lambda: (
            f"what does the user prefer about {rng.choice(OBJECTS)} "
            f"{rng.choice(ACTIONS)}-{rng.randint(0, 59)}"
        ),
        args.queries,
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.database or f"{tmp}/latency.db")
        url = f"sqlite+aiosqlite:///{path}"
        if not path.exists():
            asyncio.run(load(url, spans=args.spans, memories=args.memories))
        env = {"RETRACE_EMBEDDER": "local", "RETRACE_INDEXER_ENABLED": "true"}
        with serve(url, env=env, user=USER) as server:
            client = httpx.Client(base_url=server.url, headers={"x-retrace-key": server.key}, timeout=120)
            report(
                f"span search, hybrid, {args.spans:,} spans", timed(client, "/api/v1/search", span_queries)
            )
            report(
                f"memory search, {args.memories:,} memories",
                timed(client, "/api/v1/memory/search", memory_queries),
            )


if __name__ == "__main__":
    main()
