"""The indexing worker: resumes from the database, embeds each text once, shares its backlog."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import text

from retrace_server.config import Settings
from retrace_server.db.engine import Database
from retrace_server.embeddings.service import EmbeddingService
from retrace_server.embeddings.worker import SpanIndexer
from tests.conftest import POSTGRES_URL
from tests.support.semantic import post_trace, span, wait_for, wait_semantic
from tests.support.server import create_user, fresh_database, running_server


@pytest.fixture
def fresh_settings(
    backend: str, tmp_path_factory: pytest.TempPathFactory, make_settings: Callable[..., Settings]
) -> Iterator[Callable[..., Settings]]:
    """Settings on a database of this test's own, so that counts are exact."""
    with fresh_database(backend, str(tmp_path_factory.mktemp("indexing")), POSTGRES_URL) as url:
        yield lambda **over: make_settings(database_url=url, **over)


def count(settings: Settings, table: str) -> int:
    async def _count() -> int:
        db = Database(settings)
        try:
            async with db.read() as session:
                return int((await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())
        finally:
            await db.dispose()

    return asyncio.run(_count())


def test_indexing_resumes_after_restart(fresh_settings: Callable[..., Settings]) -> None:
    stopped = fresh_settings(embedder="local", indexer_enabled=False)
    target = span("My card got rejected at checkout", "card_declined: insufficient funds")
    others = [span(f"step {i} of the plan", f"done with step {i}") for i in range(5)]
    with running_server(stopped) as server:
        user = create_user(server, user_id="resume-user")
        post_trace(user, [target, *others])
    assert count(stopped, "span_index_queue") == 6
    assert count(stopped, "span_vectors") == 0

    with running_server(fresh_settings(embedder="local", indexer_enabled=True)) as server:
        user = create_user(server, user_id="resume-user")
        result = wait_semantic(user, "payment refused for lack of money", target["id"])
        assert result["data"][0]["span"]["id"] == target["id"]
        wait_for(lambda: count(stopped, "span_index_queue") == 0)
    assert count(stopped, "span_vectors") == 6


def test_identical_texts_are_embedded_once(fresh_settings: Callable[..., Settings]) -> None:
    settings = fresh_settings(embedder="local", indexer_enabled=True)
    system = {"role": "system", "content": "You are a careful travel agent."}
    with running_server(settings) as server:
        user = create_user(server)
        for _ in range(3):
            repeated = [
                span("ignored", "Booked the 9:40 train to Lyon", input={"messages": [system]}),
                span("Find me a hotel in Lyon", "Hotel Bellecour, 2 nights", name="search_hotels"),
            ]
            post_trace(user, repeated)
        post_trace(user, [span("Cancel the booking", "Booking cancelled")])
        wait_for(lambda: count(settings, "span_vectors") == 7)
        assert count(settings, "span_index_queue") == 0
    assert count(settings, "embedding_cache") == 3


def test_workers_share_the_backlog_without_repeating_work(fresh_settings: Callable[..., Settings]) -> None:
    settings = fresh_settings(embedder="local", indexer_enabled=False)
    with running_server(settings) as server:
        user = create_user(server)
        post_trace(user, [span(f"question number {i}", f"answer number {i}") for i in range(40)])

    async def drain(indexer: SpanIndexer) -> int:
        indexed = 0
        while (result := await indexer.run_once()).claimed:
            indexed += result.indexed
            await asyncio.sleep(0)
        return indexed

    async def two_workers() -> list[int]:
        databases = [Database(settings), Database(settings)]
        embeddings = EmbeddingService(settings)
        try:
            workers = [SpanIndexer(db, embeddings, batch_size=8) for db in databases]
            return list(await asyncio.gather(*(drain(w) for w in workers)))
        finally:
            embeddings.close()
            for db in databases:
                await db.dispose()

    per_worker = asyncio.run(two_workers())
    assert sum(per_worker) == 40
    assert count(settings, "span_vectors") == 40
    assert count(settings, "span_index_queue") == 0


def test_reindex_command_rebuilds_every_vector(fresh_settings: Callable[..., Settings]) -> None:
    settings = fresh_settings(embedder="local", indexer_enabled=True)
    with running_server(settings) as server:
        user = create_user(server)
        post_trace(user, [span(f"task {i}", f"result {i}") for i in range(4)])
        memory = user.client.post("/api/v1/memory", json={"content": "The user prefers window seats"})
        assert memory.status_code == 201
        wait_for(lambda: count(settings, "span_vectors") == 4)
    env = {
        **os.environ,
        "RETRACE_DATABASE_URL": settings.database_url,
        "RETRACE_EMBEDDER": "local",
    }
    done = subprocess.run(
        [sys.executable, "-m", "retrace_server", "reindex"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Reindexed 4 spans (4 texts were already embedded)" in done.stderr
    assert count(settings, "span_vectors") == 4
    assert count(settings, "memory_vectors") == 1
