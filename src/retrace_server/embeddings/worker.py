"""The indexing worker: embeds spans whose text changed, found from the database itself.

Database triggers queue a span (`span_index_queue`) whenever it is stored or its text
changes, so nothing is lost when a process stops. A worker leases a batch in a short
transaction, embeds it with no transaction open, then retires only the versions it embedded:
a span changed meanwhile stays queued. Several workers share the queue (SKIP LOCKED on
PostgreSQL); a crashed worker's lease simply expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, text, tuple_, update

from retrace_server.db.engine import Database
from retrace_server.db.types import utcnow
from retrace_server.embeddings.models import SpanIndexQueue, SpanVector
from retrace_server.embeddings.service import EmbeddingService, pgvector_literal, store_cache_rows
from retrace_server.embeddings.store import to_blob
from retrace_server.embeddings.text import span_text
from retrace_server.traces.models import Span

log = logging.getLogger("retrace.indexer")

LEASE = timedelta(seconds=60)
IDLE_POLL_S = 0.5
# Share of the time the in-process indexer works while spans are being ingested.
INGESTING_DUTY = 0.1
QUIET_S = 2.0
FIRST_LOAD_AT_MOST_S = 60.0
ERROR_BACKOFF_S = 5.0


@dataclass
class BatchResult:
    claimed: int = 0
    indexed: int = 0
    cache_hits: int = 0


class SpanIndexer:
    def __init__(self, db: Database, embeddings: EmbeddingService, *, batch_size: int = 64) -> None:
        self.db = db
        self.embeddings = embeddings
        self.batch_size = batch_size
        self._claimed: set[int] = set()

    async def _claim(self) -> dict[int, int]:
        now = utcnow()
        available = (
            select(SpanIndexQueue.span_pk)
            .where((SpanIndexQueue.claimed_until.is_(None)) | (SpanIndexQueue.claimed_until < now))
            .order_by(SpanIndexQueue.span_pk)
            .limit(self.batch_size)
        )
        if not self.db.is_sqlite:
            available = available.with_for_update(skip_locked=True)
        async with self.db.write() as session:
            rows = await session.execute(
                update(SpanIndexQueue)
                .where(SpanIndexQueue.span_pk.in_(available.scalar_subquery()))
                .values(claimed_until=now + LEASE)
                .returning(SpanIndexQueue.span_pk, SpanIndexQueue.seq)
            )
            claimed = {pk: seq for pk, seq in rows}
        self._claimed.update(claimed)
        return claimed

    async def run_once(self) -> BatchResult:
        """Indexes one batch; `claimed == 0` means the queue had nothing available."""
        claimed = await self._claim()
        if not claimed:
            return BatchResult()
        try:
            return await self._index(claimed)
        finally:
            self._claimed.difference_update(claimed)

    async def _index(self, claimed: dict[int, int]) -> BatchResult:
        async with self.db.read() as session:
            spans = (
                await session.execute(
                    select(
                        Span.pk,
                        Span.user_id,
                        Span.trace_id,
                        Span.span_type,
                        Span.name,
                        Span.model,
                        Span.error,
                        Span.input,
                        Span.output,
                        Span.started_at,
                    ).where(Span.pk.in_(list(claimed)))
                )
            ).all()
        texts = [span_text(dict(row._mapping)) for row in spans]
        embedded = await self.embeddings.embed(self.db, texts, for_indexing=True) if texts else None
        async with self.db.write() as session:
            retired = (
                await session.execute(
                    delete(SpanIndexQueue)
                    .where(tuple_(SpanIndexQueue.span_pk, SpanIndexQueue.seq).in_(list(claimed.items())))
                    .returning(SpanIndexQueue.span_pk)
                )
            ).scalars()
            current = set(retired)
            if embedded is None:
                return BatchResult(claimed=len(claimed))
            await store_cache_rows(session, embedded.new_cache_rows)
            rows = [
                {
                    "span_pk": span.pk,
                    "user_id": span.user_id,
                    "trace_id": span.trace_id,
                    "span_type": span.span_type,
                    "started_at": span.started_at,
                    "content_hash": h,
                    "vector": to_blob(vector),
                }
                for span, h, vector in zip(spans, embedded.hashes, embedded.vectors, strict=True)
                if span.pk in current
            ]
            if rows:
                # Delete then insert, so the row gets a new id that readers' watermarks notice.
                await session.execute(
                    delete(SpanVector).where(SpanVector.span_pk.in_([r["span_pk"] for r in rows]))
                )
                await session.execute(insert(SpanVector), rows)
                if await self.embeddings.has_pgvector(session):
                    await session.execute(
                        text(
                            "UPDATE span_vectors SET embedding = CAST(:embedding AS vector) "
                            "WHERE span_pk = :pk"
                        ),
                        [
                            {"pk": span.pk, "embedding": pgvector_literal(vector)}
                            for span, vector in zip(spans, embedded.vectors, strict=True)
                            if span.pk in current
                        ],
                    )
        return BatchResult(claimed=len(claimed), indexed=len(rows), cache_hits=embedded.cache_hits)

    async def release(self) -> None:
        """Hands back leases of work in flight, so a restart resumes it at once."""
        if not self._claimed:
            return
        async with self.db.write() as session:
            await session.execute(
                update(SpanIndexQueue)
                .where(SpanIndexQueue.span_pk.in_(list(self._claimed)))
                .values(claimed_until=None)
            )
        self._claimed.clear()

    async def _newest_queued(self) -> int:
        async with self.db.read() as session:
            return int((await session.execute(select(func.max(SpanIndexQueue.span_pk)))).scalar() or 0)

    async def _wait_for_a_pause(self, stop: asyncio.Event, newest: int) -> int:
        """The first batch loads the model: seconds of CPU, mostly holding the GIL. It waits for a
        pause in ingestion (no new span for a while), or at most a minute."""
        deadline = time.monotonic() + FIRST_LOAD_AT_MOST_S
        while not stop.is_set() and time.monotonic() < deadline:
            await _sleep_until(stop, QUIET_S)
            latest = await self._newest_queued()
            if latest == newest:
                break
            newest = latest
        return newest

    async def run(self, stop: asyncio.Event, *, yield_to_ingestion: bool = False) -> None:
        """Indexes until `stop`. Yielding, it works a small share of the time while new spans keep
        arriving (the process is busy ingesting) and at full speed once they stop."""
        newest = await self._newest_queued() if yield_to_ingestion else 0
        if yield_to_ingestion:
            newest = await self._wait_for_a_pause(stop, newest)
        while not stop.is_set():
            started = time.perf_counter()
            try:
                result = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("indexing batch failed; retrying in %.0fs", ERROR_BACKOFF_S)
                await _sleep_until(stop, ERROR_BACKOFF_S)
                continue
            if result.claimed == 0:
                await _sleep_until(stop, IDLE_POLL_S)
            elif yield_to_ingestion:
                latest = await self._newest_queued()
                if latest > newest:
                    busy = time.perf_counter() - started
                    await _sleep_until(stop, busy * (1 / INGESTING_DUTY - 1))
                newest = latest


async def _sleep_until(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def backlog(db: Database) -> int:
    async with db.read() as session:
        return int((await session.execute(select(func.count()).select_from(SpanIndexQueue))).scalar_one())


class BackgroundIndexer:
    """The worker as a task of the serving process."""

    def __init__(self, db: Database, embeddings: EmbeddingService) -> None:
        self.indexer = SpanIndexer(db, embeddings)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[Any] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(
            self.indexer.run(self._stop, yield_to_ingestion=True), name="retrace-span-indexer"
        )

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=30)
            except TimeoutError:
                self._task.cancel()
            try:
                await self.indexer.release()
            except Exception:
                log.exception("could not release indexing leases")
