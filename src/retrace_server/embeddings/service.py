"""What a process holds for semantic search: the embedder, its threads, the vector indexes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from retrace_server.config import Settings
from retrace_server.db.engine import Database
from retrace_server.db.upsert import insert_or_update
from retrace_server.embeddings.backends import Embedder, make_embedder
from retrace_server.embeddings.models import EmbeddingCache, SpanVector
from retrace_server.embeddings.store import SyncedIndex, epoch, from_blob, to_blob
from retrace_server.embeddings.text import content_hash

# Vectors of this size (all-MiniLM-L6-v2) have an HNSW index when pgvector is installed.
HNSW_DIM = 384
# Query vectors kept per process, by exact text: agents and dashboards repeat their queries.
QUERY_CACHE_SIZE = 1024


@dataclass
class Embedded:
    """Vectors of some texts, and the cache rows that were missing (to store with the results)."""

    hashes: list[str]
    vectors: list[np.ndarray]
    new_cache_rows: dict[str, bytes]
    cache_hits: int


class EmbeddingService:
    def __init__(
        self, settings: Settings, embedder: Embedder | None = None, *, yield_to_requests: bool = False
    ) -> None:
        self.embedder = (
            embedder if embedder is not None else make_embedder(settings, single_thread=yield_to_requests)
        )
        # Requests and indexing embed on separate threads, so a query never queues behind a batch.
        self._request_pool = ThreadPoolExecutor(1, thread_name_prefix="retrace-embed-request")
        self._indexing_pool = ThreadPoolExecutor(
            1,
            thread_name_prefix="retrace-embed-indexing",
            initializer=_lower_thread_priority if yield_to_requests else None,
        )
        self.spans = SyncedIndex(
            id_column=SpanVector.id,
            user_column=SpanVector.user_id,
            key_column=SpanVector.span_pk,
            vector_column=SpanVector.vector,
            attr_columns={
                "trace_id": SpanVector.trace_id,
                "span_type": SpanVector.span_type,
                "started_at": SpanVector.started_at,
            },
            attr_converters={"started_at": epoch},
        )
        # Vector indexes of other domains (memory), made by them on first use: this domain
        # knows none of their tables.
        self._indexes: dict[str, SyncedIndex] = {}
        self._pgvector: bool | None = None
        # CPU seconds the indexing thread has spent embedding: what pacing subtracts from the
        # process's CPU time to see how busy the rest of the process is.
        self.indexing_cpu_s = 0.0
        self._query_vectors: OrderedDict[str, np.ndarray] = OrderedDict()

    def synced_index(self, name: str, build: Callable[[], SyncedIndex]) -> SyncedIndex:
        """The process's index called `name`, built by `build` the first time it is asked for."""
        index = self._indexes.get(name)
        if index is None:
            index = self._indexes[name] = build()
        return index

    @property
    def enabled(self) -> bool:
        return self.embedder is not None

    @property
    def embedder_id(self) -> str:
        assert self.embedder is not None
        return self.embedder.id

    async def embed_query(self, query: str) -> np.ndarray:
        """The vector of one query; recent queries' vectors are remembered (read-only arrays)."""
        assert self.embedder is not None
        cached = self._query_vectors.get(query)
        if cached is not None:
            self._query_vectors.move_to_end(query)
            return cached
        loop = asyncio.get_running_loop()
        vectors = await loop.run_in_executor(self._request_pool, self.embedder.embed, [query])
        vector = np.array(vectors[0], dtype=np.float32)
        vector.setflags(write=False)
        self._query_vectors[query] = vector
        if len(self._query_vectors) > QUERY_CACHE_SIZE:
            self._query_vectors.popitem(last=False)
        return vector

    async def warm_up(self) -> None:
        """Loads the model now (on the request thread, at normal priority) instead of on first use."""
        assert self.embedder is not None
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._request_pool, self.embedder.embed, ["load the model"])

    def _embed_indexing(self, texts: list[str]) -> np.ndarray:
        assert self.embedder is not None
        started = time.thread_time()
        try:
            return self.embedder.embed(texts)
        finally:
            self.indexing_cpu_s += time.thread_time() - started

    async def embed(self, db: Database, texts: list[str], *, for_indexing: bool = False) -> Embedded:
        """Vectors of `texts`, each distinct text embedded once and at most once ever (cache)."""
        assert self.embedder is not None
        hashes = [content_hash(t, embedder_id=self.embedder.id) for t in texts]
        known: dict[str, bytes] = {}
        unique = list(dict.fromkeys(hashes))
        async with db.read() as session:
            for start in range(0, len(unique), 500):
                chunk = unique[start : start + 500]
                rows = await session.execute(
                    select(EmbeddingCache.content_hash, EmbeddingCache.vector).where(
                        EmbeddingCache.content_hash.in_(chunk)
                    )
                )
                known.update({h: v for h, v in rows})
        missing = [h for h in unique if h not in known]
        new_rows: dict[str, bytes] = {}
        if missing:
            first_text = dict(zip(reversed(hashes), reversed(texts), strict=True))
            loop = asyncio.get_running_loop()
            missing_texts = [first_text[h] for h in missing]
            if for_indexing:
                matrix = await loop.run_in_executor(self._indexing_pool, self._embed_indexing, missing_texts)
            else:
                matrix = await loop.run_in_executor(self._request_pool, self.embedder.embed, missing_texts)
            for h, vector in zip(missing, matrix, strict=True):
                new_rows[h] = to_blob(vector)
            known.update(new_rows)
        return Embedded(
            hashes=hashes,
            vectors=[from_blob(known[h]) for h in hashes],
            new_cache_rows=new_rows,
            cache_hits=len(texts) - len(missing),
        )

    async def has_pgvector(self, session: AsyncSession) -> bool:
        if self._pgvector is None:
            if session.get_bind().dialect.name != "postgresql":
                self._pgvector = False
            else:
                found = await session.execute(
                    text(
                        "SELECT 1 FROM information_schema.columns "
                        "WHERE table_name = 'span_vectors' AND column_name = 'embedding'"
                    )
                )
                self._pgvector = found.first() is not None
        return self._pgvector

    def close(self) -> None:
        self._request_pool.shutdown(wait=False, cancel_futures=True)
        self._indexing_pool.shutdown(wait=False, cancel_futures=True)


# Against a request thread (nice 0) the indexing thread gets about a tenth of a contended core.
# Not 19: at 19 any busy neighbour on the host (a nice-0 process) starved it to nearly nothing,
# and spans waited minutes to be embedded on a machine whose server was idle.
INDEXING_NICENESS = 10


def _lower_thread_priority() -> None:
    """Inside a serving process, background indexing yields the CPU to requests."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), INDEXING_NICENESS)


async def store_cache_rows(session: AsyncSession, rows: dict[str, bytes]) -> None:
    if not rows:
        return
    await insert_or_update(
        session,
        EmbeddingCache,
        [{"content_hash": h, "vector": v} for h, v in rows.items()],
        keys=["content_hash"],
    )


def pgvector_literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in vector.tolist()) + "]"
