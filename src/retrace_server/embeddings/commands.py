"""The work behind `retrace-server worker` and `retrace-server reindex`."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable

from sqlalchemy import delete, func, insert, select, text

from retrace_server.config import Settings
from retrace_server.db.engine import Database
from retrace_server.embeddings.service import EmbeddingService, pgvector_literal, store_cache_rows
from retrace_server.embeddings.store import to_blob
from retrace_server.embeddings.worker import SpanIndexer, backlog
from retrace_server.memory.models import Memory, MemoryVector

Progress = Callable[[int, int], None]
MEMORY_BATCH = 128


async def run_worker(settings: Settings) -> None:
    """Indexes the backlog until SIGINT or SIGTERM; several of these may share one PostgreSQL."""
    db = Database(settings)
    embeddings = EmbeddingService(settings)
    indexer = SpanIndexer(db, embeddings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await indexer.run(stop)
    finally:
        await indexer.release()
        embeddings.close()
        await db.dispose()


async def _requeue_all_spans(db: Database) -> int:
    async with db.write() as session:
        await session.execute(text("DELETE FROM span_vectors"))
        await session.execute(
            text(
                "INSERT INTO span_index_queue (span_pk, seq) SELECT pk, 1 FROM spans WHERE true "
                "ON CONFLICT (span_pk) DO UPDATE SET seq = span_index_queue.seq + 1, claimed_until = NULL"
            )
        )
    return await backlog(db)


async def _reembed_memories(db: Database, embeddings: EmbeddingService, progress: Progress) -> None:
    async with db.read() as session:
        total = int((await session.execute(select(func.count()).select_from(Memory))).scalar_one())
    done, after = 0, ""
    while True:
        async with db.read() as session:
            rows = (
                await session.execute(
                    select(Memory.id, Memory.user_id, Memory.scope, Memory.category, Memory.content)
                    .where(Memory.id > after)
                    .order_by(Memory.id)
                    .limit(MEMORY_BATCH)
                )
            ).all()
        if not rows:
            return
        embedded = await embeddings.embed(db, [row.content for row in rows], for_indexing=True)
        async with db.write() as session:
            await store_cache_rows(session, embedded.new_cache_rows)
            ids = [row.id for row in rows]
            await session.execute(delete(MemoryVector).where(MemoryVector.memory_id.in_(ids)))
            await session.execute(
                insert(MemoryVector),
                [
                    {
                        "memory_id": row.id,
                        "user_id": row.user_id,
                        "scope": row.scope,
                        "category": row.category,
                        "vector": to_blob(vector),
                    }
                    for row, vector in zip(rows, embedded.vectors, strict=True)
                ],
            )
            if await embeddings.has_pgvector(session):
                await session.execute(
                    text("UPDATE memory_vectors SET embedding = CAST(:e AS vector) WHERE memory_id = :id"),
                    [
                        {"id": row.id, "e": pgvector_literal(vector)}
                        for row, vector in zip(rows, embedded.vectors, strict=True)
                    ],
                )
        done += len(rows)
        after = rows[-1].id
        progress(done, total)


async def reindex(settings: Settings, *, on_spans: Progress, on_memories: Progress) -> tuple[int, int]:
    """Drops every span vector and embeds all spans and memories again with the current embedder.

    Answers (spans indexed, texts served from the cache)."""
    db = Database(settings)
    embeddings = EmbeddingService(settings)
    try:
        await _reembed_memories(db, embeddings, on_memories)
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
    finally:
        embeddings.close()
        await db.dispose()
