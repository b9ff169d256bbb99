"""Agent memory: entries deduplicated per scope, keyed entries updated in place, and embedded
before the write returns so that a search right after finds them."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from functools import partial
from typing import Any

import numpy as np
from sqlalchemy import Select, delete, func, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from retrace_server.db.engine import Database
from retrace_server.db.types import utcnow
from retrace_server.embeddings.service import HNSW_DIM, EmbeddingService, pgvector_literal, store_cache_rows
from retrace_server.embeddings.store import to_blob
from retrace_server.errors import ApiError, Conflict, InvalidInput, NotFound, not_found
from retrace_server.memory.models import Memory, MemoryVector
from retrace_server.memory.schemas import MemoryCreate, MemoryFilters, MemorySearch
from retrace_server.pagination import Page
from retrace_server.search.lexical import terms
from retrace_server.traces import service as traces

# What a keyed update keeps from the stored entry when the update does not name it.
KEPT_UNLESS_NAMED = ("category", "metadata", "confidence", "source_trace_id", "source_span_id")

MEMORY_COLUMNS = (
    Memory.id,
    Memory.content,
    Memory.scope,
    Memory.category,
    Memory.key,
    Memory.metadata_.label("metadata"),
    Memory.confidence,
    Memory.source_trace_id,
    Memory.source_span_id,
    Memory.created_at,
    Memory.updated_at,
)


def normalised_hash(content: str) -> str:
    """Two contents are the same memory when they differ only in case and spacing."""
    return hashlib.sha256(" ".join(content.split()).casefold().encode()).hexdigest()


async def _one(session: AsyncSession, *conditions: Any) -> dict[str, Any] | None:
    row = (await session.execute(select(*MEMORY_COLUMNS).where(*conditions))).first()
    return dict(row._mapping) if row is not None else None


async def create(
    db: Database, embeddings: EmbeddingService, *, user_id: str, payload: MemoryCreate
) -> tuple[dict[str, Any], bool]:
    """Stores an entry; answers (entry, created). Same content in the scope returns the existing
    entry; the same key in the scope updates that entry, changing only the fields it names."""
    await _check_source(db, user_id=user_id, payload=payload)
    digest = normalised_hash(payload.content)
    vector: np.ndarray | None = None
    cache_rows: dict[str, bytes] = {}
    if embeddings.enabled:
        # Embedded with no write transaction open: the model is slow, writers queue on SQLite.
        embedded = await embeddings.embed(db, [payload.content])
        vector, cache_rows = embedded.vectors[0], embedded.new_cache_rows
    store = partial(
        _store,
        db,
        embeddings,
        user_id=user_id,
        payload=payload,
        digest=digest,
        vector=vector,
        cache_rows=cache_rows,
    )
    try:
        return await store()
    except IntegrityError:
        # A concurrent writer stored the same key or content first (PostgreSQL): answer with theirs.
        return await store()


async def _store(
    db: Database,
    embeddings: EmbeddingService,
    *,
    user_id: str,
    payload: MemoryCreate,
    digest: str,
    vector: np.ndarray | None,
    cache_rows: dict[str, bytes],
) -> tuple[dict[str, Any], bool]:
    now = utcnow()
    in_scope = (Memory.user_id == user_id, Memory.scope == payload.scope)
    async with db.write() as session:
        same_content = await _one(session, *in_scope, Memory.content_hash == digest)
        keyed = await _one(session, *in_scope, Memory.key == payload.key) if payload.key is not None else None
        if keyed is None and same_content is not None:
            return same_content, False
        if keyed is not None and same_content is not None and same_content["id"] != keyed["id"]:
            raise Conflict(
                f"The same content is already stored in scope {payload.scope!r} "
                f"as memory {same_content['id']}"
            )
        fields = {name: getattr(payload, name) for name in KEPT_UNLESS_NAMED}
        if keyed is not None:
            fields.update({n: keyed[n] for n in KEPT_UNLESS_NAMED if n not in payload.model_fields_set})
        values = {
            "content": payload.content,
            "content_hash": digest,
            "category": fields["category"],
            "metadata_": fields["metadata"] or {},
            "confidence": fields["confidence"],
            "source_trace_id": fields["source_trace_id"],
            "source_span_id": fields["source_span_id"],
            "updated_at": now,
        }
        if keyed is not None:
            memory_id = keyed["id"]
            await session.execute(update(Memory).where(Memory.id == memory_id).values(**values))
        else:
            memory_id = str(uuid.uuid4())
            await session.execute(
                insert(Memory),
                {
                    "id": memory_id,
                    "user_id": user_id,
                    "scope": payload.scope,
                    "key": payload.key,
                    "created_at": now,
                    **values,
                },
            )
        if vector is not None:
            await store_cache_rows(session, cache_rows)
            await _store_vector(
                session,
                embeddings,
                memory_id=memory_id,
                user_id=user_id,
                scope=payload.scope,
                category=fields["category"],
                vector=vector,
            )
        stored = await _one(session, Memory.id == memory_id)
        assert stored is not None
        return stored, keyed is None


async def _store_vector(
    session: AsyncSession,
    embeddings: EmbeddingService,
    *,
    memory_id: str,
    user_id: str,
    scope: str,
    category: str | None,
    vector: np.ndarray,
) -> None:
    # A new row (new id) on every write lets other processes' watermarks notice the change.
    await session.execute(delete(MemoryVector).where(MemoryVector.memory_id == memory_id))
    await session.execute(
        insert(MemoryVector),
        {
            "memory_id": memory_id,
            "user_id": user_id,
            "scope": scope,
            "category": category,
            "vector": to_blob(vector),
        },
    )
    if await embeddings.has_pgvector(session):
        await session.execute(
            text("UPDATE memory_vectors SET embedding = CAST(:e AS vector) WHERE memory_id = :id"),
            {"e": pgvector_literal(vector), "id": memory_id},
        )


async def _check_source(db: Database, *, user_id: str, payload: MemoryCreate) -> None:
    """A memory may cite only the caller's own trace (and a span of it): another user's trace id
    is refused exactly like one that does not exist, so nothing about it leaks."""
    if payload.source_trace_id is None:
        return
    try:
        trace = await traces.get(
            db, user_id=user_id, trace_id=payload.source_trace_id, spans=payload.source_span_id is not None
        )
    except (ApiError, NotFound) as exc:
        if exc.status != 404:
            raise
        raise InvalidInput(f"source_trace_id: you have no trace {payload.source_trace_id!r}") from None
    span_id = payload.source_span_id
    if span_id is not None and all(span["id"] != span_id for span in trace["spans"]):
        raise InvalidInput(f"source_span_id: trace {payload.source_trace_id!r} has no span {span_id!r}")


def _filtered(query: Select[Any], *, user_id: str, filters: MemoryFilters) -> Select[Any]:
    query = query.where(Memory.user_id == user_id)
    if filters.scope is not None:
        query = query.where(Memory.scope == filters.scope)
    if filters.category is not None:
        query = query.where(Memory.category == filters.category)
    if filters.key is not None:
        query = query.where(Memory.key == filters.key)
    return query


async def list_memories(
    db: Database, *, user_id: str, filters: MemoryFilters, page: Page
) -> tuple[list[dict[str, Any]], int]:
    async with db.read() as session:
        total = (
            await session.execute(
                _filtered(select(func.count()).select_from(Memory), user_id=user_id, filters=filters)
            )
        ).scalar_one()
        rows = await session.execute(
            _filtered(select(*MEMORY_COLUMNS), user_id=user_id, filters=filters)
            .order_by(Memory.created_at.desc(), Memory.id.desc())
            .limit(page.limit)
            .offset(page.offset)
        )
        return [dict(r._mapping) for r in rows], total


async def get(db: Database, *, user_id: str, memory_id: str) -> dict[str, Any]:
    async with db.read() as session:
        memory = await _one(session, Memory.id == memory_id, Memory.user_id == user_id)
    if memory is None:
        raise not_found("Memory")
    return memory


async def delete_memory(db: Database, *, user_id: str, memory_id: str) -> None:
    async with db.write() as session:
        result = await session.execute(
            delete(Memory).where(Memory.id == memory_id, Memory.user_id == user_id)
        )
        if result.rowcount == 0:  # type: ignore[attr-defined]
            raise not_found("Memory")


async def search(
    db: Database, embeddings: EmbeddingService, *, user_id: str, request: MemorySearch
) -> dict[str, Any]:
    if not embeddings.enabled:
        return await _search_words(db, user_id=user_id, request=request)
    vector = await embeddings.embed_query(request.query)
    async with db.read() as session:
        if await embeddings.has_pgvector(session):
            hits = await _nearest_pgvector(session, user_id=user_id, vector=vector, request=request)
        else:
            hits = await _nearest_in_memory(
                session, embeddings, user_id=user_id, vector=vector, request=request
            )
        # Cosine similarity of normalised vectors, clipped to 0..1 (opposite meaning scores 0).
        scored = [(key, max(0.0, min(1.0, score))) for key, score in hits]
        if request.min_score is not None:
            scored = [(key, score) for key, score in scored if score >= request.min_score]
        # By primary key alone: given a user condition too, SQLite walks the user's index instead.
        rows = await session.execute(
            select(Memory.user_id.label("owner"), *MEMORY_COLUMNS).where(
                Memory.id.in_([k for k, _ in scored])
            )
        )
        found = {}
        for row in rows:
            values = dict(row._mapping)
            if values.pop("owner") == user_id:
                found[row.id] = values
    gone = [key for key, _ in scored if key not in found]
    if gone:
        embeddings.memories.forget(user_id, gone)
    data = [{**found[key], "score": round(score, 6)} for key, score in scored if key in found]
    return {"data": data[: request.limit], "mode": "semantic"}


async def _nearest_in_memory(
    session: AsyncSession,
    embeddings: EmbeddingService,
    *,
    user_id: str,
    vector: np.ndarray,
    request: MemorySearch,
) -> list[tuple[str, float]]:
    vectors = await embeddings.memories.refresh(session, user_id)

    def mask(attrs: Mapping[str, np.ndarray]) -> np.ndarray:
        keep = np.ones(len(attrs["scope"]), dtype=bool)
        if request.scope is not None:
            keep &= attrs["scope"] == request.scope
        if request.category is not None:
            keep &= attrs["category"] == request.category
        return keep

    use_mask = mask if request.scope is not None or request.category is not None else None
    return [(str(key), score) for key, score in vectors.search(vector, k=request.limit * 2, mask=use_mask)]


async def _nearest_pgvector(
    session: AsyncSession, *, user_id: str, vector: np.ndarray, request: MemorySearch
) -> list[tuple[str, float]]:
    params: dict[str, Any] = {"user_id": user_id, "q": pgvector_literal(vector), "k": request.limit * 2}
    clauses = ""
    for name in ("scope", "category"):
        if getattr(request, name) is not None:
            clauses += f" AND {name} = :{name}"
            params[name] = getattr(request, name)
    dim = len(vector)
    # The HNSW index covers 384-dimension vectors; other sizes are ranked exactly.
    column, target = (
        (f"embedding::vector({dim})", f"CAST(:q AS vector({dim}))")
        if dim == HNSW_DIM
        else ("embedding", "CAST(:q AS vector)")
    )
    await session.execute(text("SET LOCAL hnsw.ef_search = 400"))
    rows = await session.execute(
        text(
            f"SELECT memory_id, {column} <=> {target} AS distance FROM memory_vectors "
            f"WHERE user_id = :user_id AND vector_dims(embedding) = {dim}{clauses} ORDER BY distance LIMIT :k"
        ),
        params,
    )
    return [(row[0], 1.0 - float(row[1])) for row in rows]


def _contains(word: str) -> str:
    escaped = word.replace("_", "\\_")
    return f"%{escaped}%"


async def _search_words(db: Database, *, user_id: str, request: MemorySearch) -> dict[str, Any]:
    """Without an embedder: the share of the query's words each memory contains."""
    words = terms(request.query)
    if not words:
        return {"data": [], "mode": "lexical"}
    query = _filtered(
        select(*MEMORY_COLUMNS),
        user_id=user_id,
        filters=MemoryFilters(scope=request.scope, category=request.category),
    ).where(or_(*[Memory.content.ilike(_contains(w), escape="\\") for w in words]))
    async with db.read() as session:
        rows = [dict(r._mapping) for r in await session.execute(query.limit(1000))]
    scored = []
    for row in rows:
        lowered = row["content"].lower()
        score = sum(1 for w in words if w in lowered) / len(words)
        if request.min_score is None or score >= request.min_score:
            scored.append({**row, "score": round(score, 6)})
    scored.sort(key=lambda r: (r["score"], r["updated_at"]), reverse=True)
    return {"data": scored[: request.limit], "mode": "lexical"}
