"""Lexical ranking by the database's own full-text engine: FTS5 bm25 or PostgreSQL ts_rank_cd."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from retrace_server.db.types import UtcDateTime
from retrace_server.search.schemas import SearchRequest

MAX_TERMS = 32
# Words that match nearly every span: they would only slow an OR query down.
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "has",
        "have",
        "how",
        "i",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "was",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "did",
        "do",
        "does",
        "my",
        "our",
        "you",
        "your",
        "me",
        "we",
        "they",
        "them",
    ]
)
# Letters and digits, split at underscores and punctuation as FTS5's unicode61 tokenizer does,
# so a query term is always one indexed token (phrase queries need positions we do not keep).
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)

# Weights of name, span_type, model, error, input, output.
_BM25_WEIGHTS = "8.0, 2.0, 2.0, 6.0, 1.0, 1.0"


def terms(query: str) -> list[str]:
    found = [t for t in _TOKEN.findall(query.lower()) if t not in STOPWORDS]
    if not found:
        found = _TOKEN.findall(query.lower())
    return list(dict.fromkeys(found))[:MAX_TERMS]


def _filters(request: SearchRequest, params: dict[str, Any], *, alias: str) -> str:
    clauses = []
    if request.trace_id is not None:
        clauses.append(f"{alias}.trace_id = :trace_id")
        params["trace_id"] = request.trace_id
    if request.span_type is not None:
        clauses.append(f"{alias}.span_type = :span_type")
        params["span_type"] = request.span_type
    if request.since is not None:
        clauses.append(f"{alias}.started_at >= :since")
        params["since"] = request.since
    if request.until is not None:
        clauses.append(f"{alias}.started_at < :until")
        params["until"] = request.until
    return "".join(f" AND {c}" for c in clauses)


async def ranked(session: AsyncSession, *, user_id: str, request: SearchRequest, depth: int) -> list[int]:
    """Span pks of the caller's best lexical matches, best first."""
    words = terms(request.query)
    if not words:
        return []
    params: dict[str, Any] = {"user_id": user_id, "depth": depth}
    if session.get_bind().dialect.name == "postgresql":
        params["query"] = " | ".join(words)
        sql = (
            "SELECT s.pk FROM spans s, to_tsquery('english', :query) q "
            "WHERE s.user_id = :user_id AND s.search_document @@ q"
            f"{_filters(request, params, alias='s')} "
            "ORDER BY ts_rank_cd(s.search_document, q) DESC, s.pk DESC LIMIT :depth"
        )
    else:
        params["query"] = " OR ".join(f'"{w}"' for w in words)
        sql = (
            "SELECT s.pk FROM spans_fts JOIN spans s ON s.pk = spans_fts.rowid "
            "WHERE spans_fts MATCH :query AND s.user_id = :user_id"
            f"{_filters(request, params, alias='s')} "
            f"ORDER BY bm25(spans_fts, {_BM25_WEIGHTS}), s.pk DESC LIMIT :depth"
        )
    # Timestamps bind through the shared column type (ISO text on SQLite, timestamptz on PostgreSQL).
    bound = text(sql).bindparams(
        *[bindparam(n, type_=UtcDateTime()) for n in ("since", "until") if n in params]
    )
    return [row[0] for row in await session.execute(bound, params)]


def stem(word: str) -> str:
    """A crude prefix stem, close enough to porter's for matching words in Python."""
    return word[: max(4, len(word) - 3)] if len(word) > 5 else word


def coverage(text: str, words: list[str]) -> float:
    """The share of the query's words that `text` contains (by stem)."""
    if not words:
        return 0.0
    lowered = text.lower()
    return sum(1 for w in words if re.search(r"(?<![^\W_])" + re.escape(stem(w)), lowered)) / len(words)
