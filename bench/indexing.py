"""Semantic indexing: throughput and dedupe on a realistic agent run, and lag under a steady load.

Throughput (the default): stores traces of a support agent (a fixed system prompt, a question
per run, tool calls whose results repeat across runs, a growing conversation) through the traces
service into a new SQLite database, then drains the backlog with the indexing worker and the
real model.

    python bench/indexing.py [--traces 60]

Lag (`lag`): runs `retrace-server serve` on its defaults (SQLite, the in-process indexer, the
local embedder), sends `--rate` traces/s of `--spans` spans of distinct text (about `--chars`
characters each) for `--seconds`, printing the backlog and its oldest span's age from /health
as it goes, then measures how long after the load's end the last span stored is found by
meaning. `--worker cpu|cuda|auto` indexes in a separate `retrace-server worker --device ...`
process instead (`--processes N` of them; use `--database-url` with PostgreSQL for N > 1);
`--local-embedding full` measures the full-precision embedder of earlier releases.

    python bench/indexing.py lag [--seconds 45] [--rate 20] [--spans 20] [--chars 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

import httpx

from _server import serve
from _spans import chat_span
from retrace_server.auth.keys import issue_key
from retrace_server.config import Settings
from retrace_server.db import migrate
from retrace_server.db.engine import Database
from retrace_server.embeddings.service import EmbeddingService
from retrace_server.embeddings.worker import SpanIndexer
from retrace_server.ingest.service import Ingestor
from retrace_server.pricing import price_table
from retrace_server.traces import service as traces
from retrace_server.traces.schemas import TraceCreate

SYSTEM = (
    "You are the support agent of an online shop. Be brief and polite. Use the tools to look up "
    "orders, refunds and shipping before answering; never invent an order status."
)
QUESTIONS = [
    "Where is my order {n}?",
    "I want a refund for order {n}, the mug arrived broken",
    "Can I change the delivery address of order {n}?",
    "Why was I charged twice for order {n}?",
    "Order {n} says delivered but I have nothing",
]
TOOL_RESULTS = {
    "lookup_order": [
        '{{"order": {n}, "status": "shipped", "carrier": "DHL"}}',
        '{{"order": {n}, "status": "processing"}}',
    ],
    "refund_policy": ["Refunds within 30 days of delivery, to the original payment method."],
    "shipping_times": ["Standard 3-5 business days, express 1-2 business days."],
}


def run(rng: random.Random) -> dict[str, Any]:
    n = rng.randint(10000, 99999)
    question = rng.choice(QUESTIONS).format(n=n)
    messages: list[dict[str, str]] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": question},
    ]
    spans = []
    for step in range(rng.randint(3, 6)):
        tool = rng.choice(list(TOOL_RESULTS))
        result = rng.choice(TOOL_RESULTS[tool]).format(n=n)
        spans.append(
            {
                "name": "plan",
                "span_type": "llm_call",
                "model": "gpt-4o-mini",
                "input": {"messages": list(messages)},
                "output": f"I will call {tool}.",
            }
        )
        spans.append(
            {
                "name": tool,
                "span_type": "tool_call",
                "input": {"order": n} if "order" in tool else {},
                "output": result,
            }
        )
        messages += [{"role": "assistant", "content": f"call {tool}"}, {"role": "tool", "content": result}]
        if step == 0:
            spans.append(
                {
                    "name": "memory_lookup",
                    "span_type": "tool_call",
                    "input": {"scope": "global"},
                    "output": "The customer prefers email follow-ups.",
                }
            )
    spans.append(
        {
            "name": "answer",
            "span_type": "llm_call",
            "model": "gpt-4o-mini",
            "input": {"messages": messages},
            "output": f"Your order {n} is on its way; you will get an email when it is delivered.",
        }
    )
    return {"name": "support-agent", "spans": spans}


async def main(traces_count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/indexing.db"
        await migrate.upgrade(url)
        settings = Settings(_env_file=None, database_url=url, embedder="local")
        db = Database(settings)
        embeddings = EmbeddingService(settings)
        try:
            async with db.write() as session:
                await issue_key(session, user_id="bench")
            ingestor = Ingestor(db, prices=price_table(None))
            rng = random.Random(5)
            spans = 0
            for _ in range(traces_count):
                payload = TraceCreate.model_validate(run(rng))
                spans += len(payload.spans)
                await traces.create(ingestor, user_id="bench", payload=payload)
            await embeddings.embed(db, ["load the model before timing"])
            indexer = SpanIndexer(db, embeddings)
            indexed = hits = 0
            started = time.perf_counter()
            while (result := await indexer.run_once()).claimed:
                indexed += result.indexed
                hits += result.cache_hits
            elapsed = time.perf_counter() - started
        finally:
            embeddings.close()
            await db.dispose()
    embedded = indexed - hits
    print(f"traces={traces_count} spans={spans} indexed={indexed} in {elapsed:.1f}s")
    print(
        f"distinct texts embedded: {embedded} ({embedded / elapsed:,.1f} texts/s); "
        f"spans indexed: {indexed / elapsed:,.1f}/s"
    )
    print(f"dedupe: {hits / indexed:.1%} of spans reused a cached vector")


def _distinct_span(question: str, answer: str) -> dict[str, Any]:
    """A span unlike the load's, found first by a search for its answer once it is embedded."""
    messages = [{"role": "user", "content": question}]
    return {
        "id": str(uuid.uuid4()),
        "span_type": "llm_call",
        "name": "chat",
        "input": {"messages": messages},
        "output": answer,
    }


def _backlog(client: httpx.Client) -> str:
    status = client.get("/health").json()["indexing"] or {}
    return f"backlog {status.get('backlog')}, oldest {status.get('oldest_age_s')}s"


async def _send_load(url: str, key: str, args: argparse.Namespace, marker: dict[str, Any]) -> int:
    """`args.rate` traces per second for `args.seconds`, on schedule; the last span is `marker`."""
    rng = random.Random(20)
    total = int(args.rate * args.seconds)
    sent = 0
    async with httpx.AsyncClient(base_url=url, headers={"x-retrace-key": key}, timeout=60) as client:

        async def post(n: int) -> None:
            spans = [
                {"id": str(uuid.uuid4()), **chat_span(rng, n * 1000 + i, chars=args.chars)}
                for i in range(args.spans)
            ]
            if n == total - 1:
                spans[-1] = marker
            response = await client.post(
                "/api/v1/traces", json={"id": str(uuid.uuid4()), "name": "load", "spans": spans}
            )
            response.raise_for_status()

        started = time.monotonic()
        pending: set[asyncio.Task[None]] = set()
        for n in range(total):
            await asyncio.sleep(max(0.0, started + n / args.rate - time.monotonic()))
            task = asyncio.create_task(post(n))
            pending.add(task)
            task.add_done_callback(pending.discard)
            sent += args.spans
        await asyncio.gather(*pending)
    return sent


def lag(args: argparse.Namespace) -> None:
    env = {
        "RETRACE_EMBEDDER": "local",
        "RETRACE_INDEXER_ENABLED": "false" if args.worker else "true",
        "RETRACE_LOCAL_EMBEDDING": args.local_embedding,
    }
    print(
        f"settings: {args.rate} traces/s x {args.spans} spans of ~{args.chars} characters for "
        f"{args.seconds}s; indexing by {'worker --device ' + args.worker if args.worker else 'serve'}"
        f"{f' x{args.processes}' if args.worker else ''}; RETRACE_LOCAL_EMBEDDING={args.local_embedding}; "
        f"database {'given' if args.database_url else 'SQLite'}"
    )
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        url = args.database_url or f"sqlite+aiosqlite:///{tmp}/lag.db"
        server = stack.enter_context(serve(url, env=env))
        if args.worker:
            command = [sys.executable, "-m", "retrace_server", "worker", "--device", args.worker]
            worker = subprocess.Popen(
                [*command, "--processes", str(args.processes)],
                env={**os.environ, "RETRACE_DATABASE_URL": url, "RETRACE_LOG_LEVEL": "warning", **env},
            )
            stack.callback(worker.wait, 60)
            stack.callback(worker.terminate)
        client = stack.enter_context(
            httpx.Client(base_url=server.url, headers={"x-retrace-key": server.key}, timeout=600)
        )

        def found(span: dict[str, Any]) -> bool:
            body = {"query": span["output"], "mode": "semantic", "limit": 1}
            hits = client.post("/api/v1/search", json=body).json()["data"]
            return bool(hits) and hits[0]["span"]["id"] == span["id"]

        warm = _distinct_span("Which planet has the longest day?", "Venus turns once every 243 Earth days.")
        client.post("/api/v1/traces", json={"id": str(uuid.uuid4()), "spans": [warm]}).raise_for_status()
        while not found(warm):  # the model is loaded and the indexer running before the load
            time.sleep(0.5)
        marker = _distinct_span(
            "Who received the pelican's parcel?",
            "The pelican delivered the parcel to Morwenna, keeper of the Fastnet lighthouse.",
        )
        load = asyncio.run(_watch(server.url, server.key, args, marker, client))
        ended = time.monotonic()
        print(f"load end: {load:,} spans stored; {_backlog(client)}")
        last_report = ended
        while not found(marker):
            if time.monotonic() - ended > args.wait:
                print(f"not found by meaning within {args.wait:.0f}s of the load's end")
                return
            if time.monotonic() - last_report >= 10:
                last_report = time.monotonic()
                print(f"  +{last_report - ended:5.0f}s {_backlog(client)}")
            time.sleep(0.5)
        waited = time.monotonic() - ended
        print(f"lag: the last span stored was found by meaning {waited:.1f}s after the load's end")


async def _watch(
    url: str, key: str, args: argparse.Namespace, marker: dict[str, Any], client: httpx.Client
) -> int:
    """Runs the load, printing /health every 5 seconds meanwhile."""
    load = asyncio.create_task(_send_load(url, key, args, marker))
    started = time.monotonic()
    while not load.done():
        await asyncio.wait([load], timeout=5)
        print(f"  {time.monotonic() - started:5.0f}s {await asyncio.to_thread(_backlog, client)}")
    return load.result()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="mode")
    parser.add_argument("--traces", type=int, default=60)
    lag_parser = sub.add_parser("lag", help="lag of semantic indexing under a steady load")
    lag_parser.add_argument("--seconds", type=float, default=45)
    lag_parser.add_argument("--rate", type=float, default=20, help="traces per second")
    lag_parser.add_argument("--spans", type=int, default=20, help="spans per trace")
    lag_parser.add_argument("--chars", type=int, default=1000, help="characters of input and output per span")
    lag_parser.add_argument("--worker", choices=["cpu", "cuda", "auto"], help="index in a separate worker")
    lag_parser.add_argument("--processes", type=int, default=1, help="worker processes (PostgreSQL)")
    lag_parser.add_argument("--local-embedding", choices=["fast", "full"], default="fast")
    lag_parser.add_argument("--database-url", help="default: a new SQLite file")
    lag_parser.add_argument("--wait", type=float, default=900, help="give up this long after the load")
    arguments = parser.parse_args()
    if arguments.mode == "lag":
        lag(arguments)
    else:
        asyncio.run(main(arguments.traces))
