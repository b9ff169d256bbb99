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

from sqlalchemy import delete, insert, select, text, tuple_, update

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
ERROR_BACKOFF_S = 5.0
# Pacing inside a serving process (ServingLoad): the other threads count as busy above half a
# core; then the indexer works at most a tenth of the time, resting at most MAX_REST_S at once.
BUSY_CORES = 0.5
BUSY_DUTY = 0.1
MAX_REST_S = 5.0
REST_CHECK_S = 0.25


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

    async def _has_work(self) -> bool:
        async with self.db.read() as session:
            return (await session.execute(select(SpanIndexQueue.span_pk).limit(1))).first() is not None

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

    async def run(self, stop: asyncio.Event, *, pace: ServingLoad | None = None) -> None:
        """Indexes until `stop`. With `pace` (inside a serving process) it rests while the process's
        other threads are busy, and works at full speed as soon as they are not."""
        await self._warm_up(stop)
        while not stop.is_set():
            started = time.perf_counter()
            if pace is not None:
                pace.mark()
            try:
                result = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Indexing batch failed; retrying in %.0fs", ERROR_BACKOFF_S)
                await sleep_until(stop, ERROR_BACKOFF_S)
                continue
            if result.claimed == 0:
                await sleep_until(stop, IDLE_POLL_S)
            elif pace is not None:
                await pace.rest_after(stop, time.perf_counter() - started)

    async def _warm_up(self, stop: asyncio.Event) -> None:
        """Loads the model once spans wait (a process with nothing to index never loads it), before
        the first batch, so that no batch's time includes the load."""
        while not stop.is_set():
            try:
                if not await self._has_work():
                    await sleep_until(stop, IDLE_POLL_S)
                    continue
                await self.embeddings.warm_up()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Loading the embedding model failed; retrying in %.0fs", ERROR_BACKOFF_S)
                await sleep_until(stop, ERROR_BACKOFF_S)


class ServingLoad:
    """Paces an indexer that shares its process with request handling.

    After a batch, it looks at the CPU the process's other threads used meanwhile (the process's
    CPU time less the indexing thread's). While that is above `BUSY_CORES`, the indexer rests long
    enough to work at most `BUSY_DUTY` of the time, and stops resting as soon as the load drops.
    The signal is CPU, not arrivals: a trickle of spans leaves the process idle and must not slow
    indexing down, and a rest never outlasts the load that caused it.
    """

    def __init__(self, embeddings: EmbeddingService) -> None:
        self.embeddings = embeddings
        self.mark()

    def mark(self) -> None:
        """Starts the interval the next measure covers."""
        self._wall = time.perf_counter()
        self._process_cpu = time.process_time()
        self._indexing_cpu = self.embeddings.indexing_cpu_s

    def _others_busy_cores(self) -> float:
        """Cores the process's other threads used since the last mark or measure."""
        wall, process_cpu, indexing_cpu = (
            time.perf_counter(),
            time.process_time(),
            self.embeddings.indexing_cpu_s,
        )
        elapsed = wall - self._wall
        others = (process_cpu - self._process_cpu) - (indexing_cpu - self._indexing_cpu)
        self._wall, self._process_cpu, self._indexing_cpu = wall, process_cpu, indexing_cpu
        return others / elapsed if elapsed > 0 else 0.0

    async def rest_after(self, stop: asyncio.Event, batch_s: float) -> None:
        if self._others_busy_cores() < BUSY_CORES:
            return
        deadline = time.perf_counter() + min(batch_s * (1 / BUSY_DUTY - 1), MAX_REST_S)
        while not stop.is_set() and time.perf_counter() < deadline:
            await sleep_until(stop, REST_CHECK_S)
            if self._others_busy_cores() < BUSY_CORES:
                return


async def sleep_until(stop: asyncio.Event, seconds: float) -> None:
    """Sleeps `seconds`, or less if `stop` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


class BackgroundIndexer:
    """The worker as a task of the serving process, paced by the process's load."""

    def __init__(self, db: Database, embeddings: EmbeddingService) -> None:
        self.indexer = SpanIndexer(db, embeddings)
        self._pace = ServingLoad(embeddings)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[Any] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(
            self.indexer.run(self._stop, pace=self._pace), name="retrace-span-indexer"
        )
        self._task.add_done_callback(_report_unexpected_end)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=30)
            except TimeoutError:
                self._task.cancel()
            except Exception:
                pass  # already logged by _report_unexpected_end
            try:
                await self.indexer.release()
            except Exception:
                log.exception("Could not release indexing leases")


def _report_unexpected_end(task: asyncio.Task[Any]) -> None:
    """An indexer that dies must say so at once, not when the server stops."""
    if not task.cancelled() and task.exception() is not None:
        log.error("The span indexer stopped", exc_info=task.exception())
