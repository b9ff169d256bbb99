"""Hybrid span search: lexical and vector rankings fused by reciprocal rank."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import numpy as np
from sqlalchemy import bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from retrace_server.db.engine import Database
from retrace_server.db.types import UtcDateTime
from retrace_server.embeddings.service import HNSW_DIM, EmbeddingService, pgvector_literal
from retrace_server.embeddings.text import HIGHLIGHT_SOURCE_CHARS, span_text
from retrace_server.search import lexical
from retrace_server.search.errors import SemanticSearchOff
from retrace_server.search.highlight import highlight
from retrace_server.search.schemas import SearchMode, SearchRequest
from retrace_server.traces import service as traces
from retrace_server.traces.models import Span, Trace

RRF_K = 60


def fuse(rankings: list[list[tuple[int, float]]], *, limit: int) -> list[tuple[int, float]]:
    """Weighted reciprocal rank fusion of (pk, weight) rankings, scaled so that first place in
    every ranking, at full weight, scores 1."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, (pk, weight) in enumerate(ranking, start=1):
            scores[pk] = scores.get(pk, 0.0) + weight / (RRF_K + rank)
    best = len(rankings) / (RRF_K + 1)
    ordered = sorted(scores.items(), key=lambda item: item[1], reverse=True)[:limit]
    return [(pk, min(1.0, score / best)) for pk, score in ordered]


def _mode(request: SearchRequest, embeddings: EmbeddingService) -> SearchMode:
    if embeddings.enabled:
        return request.mode
    if request.mode == "semantic":
        raise SemanticSearchOff()
    return "lexical"


def _mask(request: SearchRequest, project_traces: list[str] | None) -> Any:
    if (
        request.trace_id is None
        and request.span_type is None
        and request.since is None
        and request.until is None
        and project_traces is None
    ):
        return None

    def mask(attrs: Mapping[str, np.ndarray]) -> np.ndarray:
        keep = np.ones(len(attrs["trace_id"]), dtype=bool)
        if request.trace_id is not None:
            keep &= attrs["trace_id"] == request.trace_id
        if project_traces is not None:
            keep &= np.isin(attrs["trace_id"], project_traces)
        if request.span_type is not None:
            keep &= attrs["span_type"] == request.span_type
        if request.since is not None or request.until is not None:
            started = attrs["started_at"].astype(np.float64)
            if request.since is not None:
                keep &= started >= request.since.timestamp()
            if request.until is not None:
                keep &= started < request.until.timestamp()
        return keep

    return mask


async def _semantic_exact(
    session: AsyncSession,
    embeddings: EmbeddingService,
    *,
    user_id: str,
    vector: np.ndarray,
    request: SearchRequest,
    depth: int,
) -> list[tuple[int, float]]:
    vectors = await embeddings.spans.refresh(session, user_id)
    project_traces = None
    if request.project_id is not None:
        project_traces = list(
            (
                await session.execute(
                    select(Trace.id).where(Trace.user_id == user_id, Trace.project_id == request.project_id)
                )
            ).scalars()
        )
    found = vectors.search(vector, k=depth, mask=_mask(request, project_traces))
    return [(int(str(pk)), score) for pk, score in found]


async def _semantic_pgvector(
    session: AsyncSession, *, user_id: str, vector: np.ndarray, request: SearchRequest, depth: int
) -> list[tuple[int, float]]:
    params: dict[str, Any] = {
        "user_id": user_id,
        "q": pgvector_literal(vector),
        "depth": depth,
        "dim": len(vector),
    }
    clauses = ""
    for name in ("trace_id", "span_type"):
        value = getattr(request, name)
        if value is not None:
            clauses += f" AND {name} = :{name}"
            params[name] = value
    if request.project_id is not None:
        clauses += f" AND trace_id IN {lexical.PROJECT_TRACES}"
        params["project_id"] = request.project_id
    if request.since is not None:
        clauses += " AND started_at >= :since"
        params["since"] = request.since
    if request.until is not None:
        clauses += " AND started_at < :until"
        params["until"] = request.until
    # The HNSW index covers 384-dimension vectors; other sizes are ranked exactly.
    column = f"embedding::vector({HNSW_DIM})" if len(vector) == HNSW_DIM else "embedding"
    target = f"CAST(:q AS vector({HNSW_DIM}))" if len(vector) == HNSW_DIM else "CAST(:q AS vector)"
    sql = text(
        f"SELECT span_pk, {column} <=> {target} AS distance FROM span_vectors "
        f"WHERE user_id = :user_id AND vector_dims(embedding) = :dim{clauses} "
        f"ORDER BY distance LIMIT :depth"
    ).bindparams(*[bindparam(n, type_=UtcDateTime()) for n in ("since", "until") if n in params])
    # Other users' vectors share the graph; a wider beam keeps enough of the caller's.
    await session.execute(text("SET LOCAL hnsw.ef_search = 400"))
    return [(row[0], 1.0 - float(row[1])) for row in await session.execute(sql, params)]


async def search(
    db: Database, embeddings: EmbeddingService, *, user_id: str, request: SearchRequest
) -> dict[str, Any]:
    mode = _mode(request, embeddings)
    depth = max(50, request.limit * 5)
    query_vector = (
        asyncio.create_task(embeddings.embed_query(request.query)) if mode in ("hybrid", "semantic") else None
    )
    rankings: list[list[tuple[int, float]]] = []
    try:
        async with db.read() as session:
            if mode in ("hybrid", "lexical"):
                lexical_pks = await lexical.ranked(session, user_id=user_id, request=request, depth=depth)
                rankings.append(await _weighted_by_coverage(session, lexical_pks, request.query))
            if query_vector is not None:
                vector = await query_vector
                if await embeddings.has_pgvector(session):
                    ranking = await _semantic_pgvector(
                        session, user_id=user_id, vector=vector, request=request, depth=depth
                    )
                else:
                    ranking = await _semantic_exact(
                        session, embeddings, user_id=user_id, vector=vector, request=request, depth=depth
                    )
                rankings.append([(pk, 1.0) for pk, _ in ranking])
            if mode == "semantic":
                # One ranking: its cosine similarity is a more telling score than a rank.
                fused = [(pk, max(0.0, min(1.0, score))) for pk, score in ranking[: request.limit * 2]]
            else:
                fused = fuse(rankings, limit=request.limit * 2)
            spans = await _spans(session, user_id=user_id, pks=[pk for pk, _ in fused])
    finally:
        if query_vector is not None and not query_vector.done():
            query_vector.cancel()
    gone = [pk for pk, _ in fused if pk not in spans]
    if gone:
        # Deleted since they were indexed: drop them from this process's vectors.
        embeddings.spans.forget(user_id, gone)
    data = [
        {
            "score": round(score, 6),
            "trace_id": spans[pk]["trace_id"],
            "span": spans[pk],
            "highlight": highlight(spans[pk], request.query),
        }
        for pk, score in fused
        if pk in spans
    ][: request.limit]
    return {"data": data, "mode": mode}


async def _weighted_by_coverage(session: AsyncSession, pks: list[int], query: str) -> list[tuple[int, float]]:
    """Lexical hits weighted by the share of the query's words they hold: a span that shares one
    common word with a paraphrase must not outrank what the vectors found."""
    if not pks:
        return []
    words = lexical.terms(query)
    rows = await session.execute(
        select(Span.pk, Span.name, Span.span_type, Span.model, Span.error, Span.input, Span.output).where(
            Span.pk.in_(pks)
        )
    )
    texts = {row.pk: span_text(dict(row._mapping), limit=HIGHLIGHT_SOURCE_CHARS) for row in rows}
    return [(pk, lexical.coverage(texts.get(pk, ""), words) ** 3) for pk in pks]


async def _spans(session: AsyncSession, *, user_id: str, pks: list[int]) -> dict[int, dict[str, Any]]:
    return await traces.spans_by_key(session, user_id=user_id, pks=pks)
