"""The work behind `retrace-server worker` and `retrace-server reindex`."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from sqlalchemy import text

from retrace_server.config import Settings
from retrace_server.db.engine import Database
from retrace_server.embeddings.backlog import BacklogMonitor, read_backlog
from retrace_server.embeddings.service import EmbeddingService
from retrace_server.embeddings.worker import SpanIndexer

Progress = Callable[[int, int], None]
# Work of other domains (memories) that `reindex` runs first, with its database and embedder.
ReindexStep = Callable[[Database, EmbeddingService], Awaitable[None]]


@contextlib.asynccontextmanager
async def opened(settings: Settings) -> AsyncIterator[tuple[Database, EmbeddingService]]:
    db = Database(settings)
    embeddings = EmbeddingService(settings)
    try:
        yield db, embeddings
    finally:
        embeddings.close()
        await db.dispose()


async def run_worker(settings: Settings) -> None:
    """Indexes the backlog until SIGINT or SIGTERM; several of these may share one PostgreSQL."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with opened(settings) as (db, embeddings):
        indexer = SpanIndexer(db, embeddings)
        monitor = BacklogMonitor(db)
        try:
            await asyncio.gather(indexer.run(stop), monitor.run(stop))
        finally:
            await indexer.release()


async def _requeue_all_spans(db: Database) -> int:
    async with db.write() as session:
        await session.execute(text("DELETE FROM span_vectors"))
        await session.execute(
            text(
                "INSERT INTO span_index_queue (span_pk, seq) SELECT pk, 1 FROM spans WHERE true "
                "ON CONFLICT (span_pk) DO UPDATE SET seq = span_index_queue.seq + 1, claimed_until = NULL"
            )
        )
    return (await read_backlog(db)).spans


async def reindex(
    settings: Settings, *, on_spans: Progress, first: Sequence[ReindexStep] = ()
) -> tuple[int, int]:
    """Runs `first`, then drops every span vector and embeds all spans again with the current
    embedder. Answers (spans indexed, texts served from the cache)."""
    async with opened(settings) as (db, embeddings):
        for step in first:
            await step(db, embeddings)
        total = await _requeue_all_spans(db)
        indexer = SpanIndexer(db, embeddings, batch_size=128)
        indexed = hits = 0
        on_spans(0, total)
        while True:
            result = await indexer.run_once()
            if result.claimed == 0:
                break
            indexed += result.indexed
            hits += result.cache_hits
            on_spans(indexed, total)
        return indexed, hits
