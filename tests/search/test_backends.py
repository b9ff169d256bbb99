"""The other embedder and index back ends: an OpenAI-compatible endpoint, and pgvector."""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import text

from retrace_server.config import Settings
from retrace_server.db.engine import Database
from tests.fakes.llm_server import FakeLLMServer
from tests.support.semantic import found_ids, post_trace, search, span, wait_semantic
from tests.support.server import create_user, running_server
from tests.support.wait import wait_for


def test_openai_compatible_embeddings_in_batches(make_settings: Callable[..., Settings]) -> None:
    with FakeLLMServer() as fake:
        settings = make_settings(
            embedder="openai",
            indexer_enabled=True,
            embedding_base_url=f"{fake.url}/v1",
            embedding_api_key="sk-test",
            embedding_model="text-embedding-test",
        )
        with running_server(settings) as server:
            user = create_user(server)
            word = f"kiwi{uuid.uuid4().hex[:6]}"
            spans = [span(f"fruit basket {word} number {i}", "ok") for i in range(5)]
            post_trace(user, spans)
            expected = {s["id"] for s in spans}

            def all_indexed() -> bool | None:
                return set(found_ids(search(user, f"{word} basket", mode="semantic"))) >= expected or None

            # The indexer embeds in batches, so one span can be searchable before the others.
            wait_for(all_indexed, timeout=120.0)
            stored = user.client.post("/api/v1/memory", json={"content": "the red bicycle is in the garage"})
            assert stored.status_code == 201
            hits = user.client.post("/api/v1/memory/search", json={"query": "where is the bicycle"}).json()[
                "data"
            ]
            assert hits[0]["id"] == stored.json()["id"]
    calls = [r for r in fake.requests if r["path"].endswith("/embeddings")]
    assert calls and all(r["body"]["model"] == "text-embedding-test" for r in calls)
    assert all(
        {k.lower(): v for k, v in r["headers"].items()}["authorization"] == "Bearer sk-test" for r in calls
    )
    # The five spans went to the endpoint together, not one request each.
    assert max(len(r["body"]["input"]) for r in calls) >= 5


@pytest.fixture(scope="module")
def pgvector_url() -> Iterator[str]:
    """A real PostgreSQL with the `vector` extension, from the pgserver package, in a temp dir."""
    pgserver = pytest.importorskip("pgserver")
    with tempfile.TemporaryDirectory() as data_dir:
        server = pgserver.get_server(data_dir, cleanup_mode="stop")
        try:
            socket_dir = server.get_uri().split("host=", 1)[1]
            yield f"postgresql+asyncpg://postgres@/postgres?host={socket_dir}"
        finally:
            server.cleanup()


def _scalar(settings: Settings, sql: str) -> Any:
    async def _run() -> Any:
        db = Database(settings)
        try:
            async with db.read() as session:
                await session.execute(text("SET LOCAL enable_seqscan = off"))
                return (await session.execute(text(sql))).scalars().all()
        finally:
            await db.dispose()

    return asyncio.run(_run())


def test_pgvector_index(pgvector_url: str) -> None:
    settings = Settings(
        _env_file=None,
        database_url=pgvector_url,
        embedder="local",
        indexer_enabled=True,
        rate_limit_enabled=False,
    )
    with running_server(settings) as server:
        user, other = create_user(server), create_user(server)
        target = span("My card got rejected at checkout", "card_declined: insufficient funds")
        post_trace(user, [target, span("What is the weather in Paris?", "Sunny, 21 degrees")])
        result = wait_semantic(user, "payment refused for lack of money", target["id"])
        assert found_ids(result)[0] == target["id"]
        assert target["id"] not in found_ids(
            search(other, "payment refused for lack of money", mode="semantic")
        )
        memory = user.client.post(
            "/api/v1/memory", json={"content": "The user owns a golden retriever"}
        ).json()
        hits = user.client.post("/api/v1/memory/search", json={"query": "which dog do they have"}).json()[
            "data"
        ]
        assert hits[0]["id"] == memory["id"] and 0 < hits[0]["score"] <= 1
    assert _scalar(settings, "SELECT count(*) FROM span_vectors WHERE embedding IS NOT NULL") == [2]
    plan = "\n".join(
        _scalar(
            settings,
            "EXPLAIN SELECT span_pk FROM span_vectors WHERE vector_dims(embedding) = 384 "
            "ORDER BY embedding::vector(384) <=> "
            "(SELECT embedding::vector(384) FROM span_vectors LIMIT 1) LIMIT 5",
        )
    )
    assert "ix_span_vectors_hnsw" in plan
