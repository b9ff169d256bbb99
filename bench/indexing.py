"""Indexing throughput and dedupe rate on a realistic agent run.

Stores traces of a support agent (a fixed system prompt, a question per run, tool calls whose
results repeat across runs, a growing conversation) through the traces service into a new
SQLite database, then drains the backlog with the indexing worker and the real model.

    python bench/indexing.py [--traces 60]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from typing import Any

from retrace_server.auth.keys import issue_key
from retrace_server.config import Settings
from retrace_server.db import migrate
from retrace_server.db.engine import Database
from retrace_server.embeddings.service import EmbeddingService
from retrace_server.embeddings.worker import SpanIndexer
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
        settings = Settings(_env_file=None, database_url=url, embedder="local")  # type: ignore[call-arg]
        db = Database(settings)
        embeddings = EmbeddingService(settings)
        try:
            async with db.write() as session:
                await issue_key(session, user_id="bench")
            rng = random.Random(5)
            spans = 0
            for _ in range(traces_count):
                payload = TraceCreate.model_validate(run(rng))
                spans += len(payload.spans)
                await traces.create(db, user_id="bench", payload=payload)
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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--traces", type=int, default=60)
    asyncio.run(main(parser.parse_args().traces))
