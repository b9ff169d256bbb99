"""Lexical ranking by the database's own full-text engine: FTS5 bm25 or PostgreSQL ts_rank_cd,
plus, on SQLite, the spans that wait for their full-text batch."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from retrace_server.db.types import UtcDateTime
from retrace_server.search import fts_index
from retrace_server.search.fts_sql import INDEX_SCHEMA, INDEXED_THROUGH, PENDING_CHANGES, fts_value_list
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


# The caller's traces of one project (read through the traces' (user, project) index).
PROJECT_TRACES = "(SELECT t.id FROM traces t WHERE t.user_id = :user_id AND t.project_id = :project_id)"


def _filters(request: SearchRequest, params: dict[str, Any], *, alias: str) -> str:
    clauses = []
    if request.trace_id is not None:
        clauses.append(f"{alias}.trace_id = :trace_id")
        params["trace_id"] = request.trace_id
    if request.span_type is not None:
        clauses.append(f"{alias}.span_type = :span_type")
        params["span_type"] = request.span_type
    if request.project_id is not None:
        clauses.append(f"{alias}.trace_id IN {PROJECT_TRACES}")
        params["project_id"] = request.project_id
    if request.since is not None:
        clauses.append(f"{alias}.started_at >= :since")
        params["since"] = request.since
    if request.until is not None:
        clauses.append(f"{alias}.started_at < :until")
        params["until"] = request.until
    return "".join(f" AND {c}" for c in clauses)


# Ranking scores every match; for words common in the caller's spans only the newest matches
# are ranked, which keeps a query's cost flat as spans accumulate. Matches of all the words are
# ranked first, so an exact identifier is never lost to the window.
RANK_WINDOW = 500
# Identifiers split into a few tokens (ERR_RATE_LIMIT_429); long sentences rarely match whole.
ALL_WORDS_MAX_TERMS = 4


async def ranked(session: AsyncSession, *, user_id: str, request: SearchRequest, depth: int) -> list[int]:
    """Span pks of the caller's best lexical matches, best first."""
    words = terms(request.query)
    if not words:
        return []
    if session.get_bind().dialect.name == "postgresql":
        return await _ranked(
            session, _ranked_postgres, words=words, user_id=user_id, request=request, depth=depth
        )
    async with _index_attached(session):
        # One mark for both halves: a batch that lands between them neither hides a span nor
        # shows it twice.
        indexed_through = (await _run(session, f"SELECT {INDEXED_THROUGH}", {}))[0]
        any_word = await _ranked(
            session,
            partial(_ranked_sqlite, indexed_through=indexed_through),
            words=words,
            user_id=user_id,
            request=request,
            depth=depth,
        )
        unindexed = await unindexed_matches(
            session,
            words=words,
            user_id=user_id,
            request=request,
            depth=depth,
            indexed_through=indexed_through,
        )
    return _merge_unindexed(any_word, unindexed, words=len(words))[:depth]


@contextlib.asynccontextmanager
async def _index_attached(session: AsyncSession) -> AsyncIterator[None]:
    """The index's file joins this read connection for one search. Attached for good, it would
    join the write transactions the pooled connection later runs too, and take its lock."""
    connection = await session.connection()
    path = fts_index.index_path(str(connection.engine.url.database))
    await connection.execute(text(f"ATTACH DATABASE :path AS {INDEX_SCHEMA}"), {"path": path})
    try:
        if not (await connection.execute(text(fts_index.missing_schema(INDEX_SCHEMA)))).scalar():
            for statement in fts_index.schema_ddl(INDEX_SCHEMA):
                await connection.execute(text(statement))
        yield
    finally:
        await connection.execute(text(f"DETACH DATABASE {INDEX_SCHEMA}"))


async def _ranked(
    session: AsyncSession, rank: Any, *, words: list[str], user_id: str, request: SearchRequest, depth: int
) -> list[int]:
    any_word, complete = await rank(
        session, all_words=False, words=words, user_id=user_id, request=request, depth=depth
    )
    if not complete and 1 < len(words) <= ALL_WORDS_MAX_TERMS:
        every_word, _ = await rank(
            session, all_words=True, words=words, user_id=user_id, request=request, depth=depth
        )
        seen = set(every_word)
        any_word = every_word + [pk for pk in any_word if pk not in seen]
    return list(any_word[:depth])


async def _rows(session: AsyncSession, sql: str, params: dict[str, Any]) -> list[Any]:
    # Timestamps bind through the shared column type (ISO text on SQLite, timestamptz on PostgreSQL).
    bound = text(sql).bindparams(
        *[bindparam(n, type_=UtcDateTime()) for n in ("since", "until") if n in params]
    )
    return list(await session.execute(bound, params))


async def _run(session: AsyncSession, sql: str, params: dict[str, Any]) -> list[Any]:
    return [row[0] for row in await _rows(session, sql, params)]


async def _ranked_sqlite(
    session: AsyncSession,
    *,
    all_words: bool,
    words: list[str],
    user_id: str,
    request: SearchRequest,
    depth: int,
    indexed_through: int,
) -> tuple[list[int], bool]:
    """Ranked matches, and whether every match was ranked (not just the newest window)."""
    params: dict[str, Any] = {
        "user_id": user_id,
        "depth": depth,
        "indexed_through": indexed_through,
        "window": RANK_WINDOW,
        "query": (" AND " if all_words else " OR ").join(f'"{w}"' for w in words),
    }
    # CROSS JOIN keeps the full-text index as the outer loop.
    matches = (
        f"FROM {INDEX_SCHEMA}.spans_fts CROSS JOIN spans s ON s.pk = spans_fts.rowid "
        "WHERE spans_fts MATCH :query AND spans_fts.rowid <= :indexed_through "
        f"AND spans_fts.rowid NOT IN {PENDING_CHANGES} "
        f"AND s.user_id = :user_id{_filters(request, params, alias='s')}"
    )
    floor = await _run(
        session,
        f"SELECT spans_fts.rowid {matches} ORDER BY spans_fts.rowid DESC LIMIT 1 OFFSET :window",
        params,
    )
    params["floor"] = floor[0] if floor else 0
    ranked = await _run(
        session,
        f"SELECT s.pk {matches} AND spans_fts.rowid >= :floor "
        f"ORDER BY bm25(spans_fts, {_BM25_WEIGHTS}), s.pk DESC LIMIT :depth",
        params,
    )
    return ranked, not floor


async def unindexed_matches(
    session: AsyncSession,
    *,
    words: list[str],
    user_id: str,
    request: SearchRequest,
    depth: int,
    indexed_through: int,
) -> list[tuple[int, int]]:
    """(pk, words matched) of the caller's spans the full-text index does not hold as they are
    (new, or changed since the indexer's last pass: `fts_index`), most words first, then newest."""
    params: dict[str, Any] = {"user_id": user_id, "depth": depth, "indexed_through": indexed_through}
    # The text the full-text index would hold for these spans.
    columns = fts_value_list("s")
    tests = []
    for index, word in enumerate(words):
        params[f"w{index}"] = f"%{stem(word)}%"
        # coalesce: a NULL column (no model, no error) makes a miss NULL rather than 0.
        tests.append("coalesce(" + " OR ".join(f"{column} LIKE :w{index}" for column in columns) + ", 0)")
    # `+s.user_id`: the primary key range (a short tail of new spans) must drive the scan.
    rows = await _rows(
        session,
        f"SELECT pk, matched FROM (SELECT s.pk, {' + '.join(tests)} AS matched FROM spans s "
        f"WHERE (s.pk > :indexed_through OR s.pk IN {PENDING_CHANGES}) "
        f"AND +s.user_id = :user_id{_filters(request, params, alias='s')}) "
        "WHERE matched > 0 ORDER BY matched DESC, pk DESC LIMIT :depth",
        params,
    )
    return [(row[0], row[1]) for row in rows]


def _merge_unindexed(ranked: list[int], unindexed: list[tuple[int, int]], *, words: int) -> list[int]:
    """Unindexed spans holding every word lead; the rest follow the indexed matches."""
    every_word = [pk for pk, matched in unindexed if matched == words]
    some_words = [pk for pk, matched in unindexed if matched < words]
    return every_word + ranked + some_words


async def _ranked_postgres(
    session: AsyncSession,
    *,
    all_words: bool,
    words: list[str],
    user_id: str,
    request: SearchRequest,
    depth: int,
) -> tuple[list[int], bool]:
    params: dict[str, Any] = {
        "user_id": user_id,
        "depth": depth,
        "window": RANK_WINDOW,
        "query": (" & " if all_words else " | ").join(words),
    }
    rows = await _rows(
        session,
        "WITH q AS (SELECT to_tsquery('english', :query) AS query), recent AS ("
        " SELECT s.pk, s.search_document FROM spans s, q"
        f" WHERE s.user_id = :user_id AND s.search_document @@ q.query{_filters(request, params, alias='s')}"
        " ORDER BY s.pk DESC LIMIT :window) "
        "SELECT recent.pk, (SELECT count(*) FROM recent) AS matches FROM recent, q "
        "ORDER BY ts_rank_cd(recent.search_document, q.query) DESC, recent.pk DESC LIMIT :depth",
        params,
    )
    # Fewer matches than the window: every match was ranked.
    return [row[0] for row in rows], not rows or rows[0][1] < RANK_WINDOW


def stem(word: str) -> str:
    """A crude prefix stem, close enough to porter's for matching words in Python."""
    return word[: max(4, len(word) - 3)] if len(word) > 5 else word


def coverage(text: str, words: list[str]) -> float:
    """The share of the query's words that `text` contains (by stem)."""
    if not words:
        return 0.0
    lowered = text.lower()
    return sum(1 for w in words if re.search(r"(?<![^\W_])" + re.escape(stem(w)), lowered)) / len(words)
