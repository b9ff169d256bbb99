"""Semantic indexing keeps up: spans are embedded soon after ingestion pauses, whatever happened
before (a restart, a model load, a burst), and the backlog is visible in /health and the log."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import text

from retrace_server.config import Settings
from retrace_server.db import migrate
from retrace_server.db.engine import Database
from retrace_server.db.types import sqlite_timestamp, utcnow
from retrace_server.embeddings.backlog import BacklogMonitor
from tests.conftest import POSTGRES_URL
from tests.support.semantic import post_trace, span, wait_for, wait_semantic
from tests.support.server import create_user, fresh_database, running_server


@pytest.fixture
def fresh_settings(
    backend: str, tmp_path_factory: pytest.TempPathFactory, make_settings: Callable[..., Settings]
) -> Iterator[Callable[..., Settings]]:
    with fresh_database(backend, str(tmp_path_factory.mktemp("lag")), POSTGRES_URL) as url:
        yield lambda **over: make_settings(database_url=url, **over)


def scalar(settings: Settings, sql: str) -> int:
    async def _read() -> int:
        db = Database(settings)
        try:
            async with db.read() as session:
                return int((await session.execute(text(sql))).scalar_one())
        finally:
            await db.dispose()

    return asyncio.run(_read())


def test_spans_stored_during_the_first_batch_are_embedded_without_a_long_rest(
    fresh_settings: Callable[..., Settings],
) -> None:
    """The indexer once rested nine times its previous batch whenever spans arrived during it, and
    its first batch included loading the model: spans stored meanwhile waited for minutes."""
    settings = fresh_settings(embedder="local", indexer_enabled=True)
    with running_server(settings) as server:
        user = create_user(server)
        claimed_at: float | None = None
        embedded_at: float | None = None
        step = 0
        # A steady trickle of spans, right from the start, until the first batch is stored.
        while embedded_at is None:
            post_trace(user, [span(f"step {step} of the delivery plan", f"done with step {step}")])
            step += 1
            now = time.monotonic()
            if claimed_at is None and scalar(
                settings, "SELECT count(*) FROM span_index_queue WHERE claimed_until IS NOT NULL"
            ):
                claimed_at = now
            if scalar(settings, "SELECT count(*) FROM span_vectors"):
                embedded_at = now
                claimed_at = claimed_at or now
            time.sleep(0.5)
        assert claimed_at is not None, "set, at the latest, when the first vectors were stored"
        first_batch_s = embedded_at - claimed_at
        target = span("My card got rejected at checkout", "card_declined: insufficient funds")
        post_trace(user, [target])
        # Before the fix the indexer now rested 9 x first_batch_s; it must go on well before that.
        found = wait_semantic(
            user, "payment refused for lack of money", target["id"], timeout=max(30.0, 3 * first_batch_s)
        )
        assert found["data"][0]["span"]["id"] == target["id"]
        wait_for(lambda: scalar(settings, "SELECT count(*) FROM span_index_queue") == 0, timeout=60)


def test_health_shows_the_indexing_backlog_and_its_age(fresh_settings: Callable[..., Settings]) -> None:
    # The embedder is on but indexing runs elsewhere (a separate worker), so the backlog stays.
    with running_server(fresh_settings(embedder="local", indexer_enabled=False)) as server:
        user = create_user(server)
        post_trace(user, [span(f"question {i}", f"answer {i}") for i in range(3)])

        def backlog() -> dict[str, float] | None:
            indexing = httpx.get(f"{server.url}/health").json()["indexing"]
            ready = indexing and indexing["backlog"] == 3 and indexing["oldest_age_s"] > 0
            return indexing if ready else None

        status = wait_for(backlog, timeout=60)
        assert set(status) == {"backlog", "oldest_age_s", "checked_at"}

    with running_server(fresh_settings(embedder="none")) as server:
        assert httpx.get(f"{server.url}/health").json()["indexing"] is None


def test_a_growing_backlog_is_logged_until_it_drains(
    fresh_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    settings = fresh_settings()

    async def scenario() -> None:
        await migrate.upgrade(settings.database_url)
        db = Database(settings)
        long_ago = utcnow() - timedelta(minutes=5)
        stamp = sqlite_timestamp(long_ago) if db.is_sqlite else long_ago

        async def queue(pks: range) -> None:
            async with db.write() as session:
                await session.execute(
                    text("INSERT INTO span_index_queue (span_pk, seq, queued_at) VALUES (:pk, 1, :at)"),
                    [{"pk": pk, "at": stamp} for pk in pks],
                )

        try:
            monitor = BacklogMonitor(db)
            await queue(range(1, 11))
            first = await monitor.refresh()
            assert first.spans == 10
            assert first.status().oldest_age_s >= 299
            await queue(range(11, 21))
            await monitor.refresh()
            async with db.write() as session:
                await session.execute(text("DELETE FROM span_index_queue"))
            drained = await monitor.refresh()
            assert drained.spans == 0
            assert drained.status().oldest_age_s == 0
        finally:
            await db.dispose()

    with caplog.at_level(logging.INFO, logger="retrace.indexer"):
        asyncio.run(scenario())
    messages = [record.getMessage() for record in caplog.records if record.name == "retrace.indexer"]
    assert any("backlog is growing: 20 spans waiting" in m for m in messages), messages
    assert messages[-1] == "Semantic indexing has caught up"


@pytest.mark.skipif(
    __import__("torch").cuda.is_available(), reason="checks the answer on a machine without a GPU"
)
def test_worker_on_a_missing_gpu_says_so(fresh_settings: Callable[..., Settings]) -> None:
    settings = fresh_settings()
    env = {**os.environ, "RETRACE_DATABASE_URL": settings.database_url, "RETRACE_EMBEDDER": "local"}
    done = subprocess.run(
        [sys.executable, "-m", "retrace_server", "worker", "--device", "cuda"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "PyTorch sees no CUDA device" in done.stderr
