"""The SQLite statements of a write, run on the database's writer thread (`db.sqlite_writer`).

Spans go in through multi-row `INSERT ... VALUES` statements, so the writer thread takes the GIL
once per statement rather than once per span, as `executemany` would; values arrive already in
stored form (`ingest.rows`), encoded on the event loop.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from functools import cache
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import Connection
from sqlalchemy.pool import StaticPool

from retrace_server.db.engine import json_text
from retrace_server.ingest.merge import SPAN_COLUMNS, TRACE_COLUMNS, SpanTotals

# Each batch size is a statement to prepare (and cache): longer batches go in several.
ROWS_PER_STATEMENT = 128
_IDS_PER_QUERY = 500

_TRACE_INSERT = (
    f"INSERT INTO traces ({', '.join(TRACE_COLUMNS)}) VALUES ({', '.join('?' for _ in TRACE_COLUMNS)}) "
    "ON CONFLICT (user_id, id) DO NOTHING"
)
_TRACE_SELECT = f"SELECT {', '.join(TRACE_COLUMNS)} FROM traces WHERE user_id = ? AND id = ?"
_SPAN_ROW = f"({', '.join('?' for _ in SPAN_COLUMNS)})"
_SPAN_UPDATED = ", ".join(
    f"{c} = excluded.{c}" for c in SPAN_COLUMNS if c not in ("id", "trace_id", "user_id")
)
_TRACE_SPANS = (
    f"SELECT {', '.join(SPAN_COLUMNS)} FROM spans WHERE user_id = ? AND trace_id = ? ORDER BY started_at, pk"
)
_SPAN_TOTALS = (
    "SELECT count(*), sum(coalesce(input_tokens, 0) + coalesce(output_tokens, 0)), sum(cost), "
    "count(input_tokens) + count(output_tokens), count(cost) FROM spans WHERE user_id = ? AND trace_id = ?"
)


@cache
def _spans_insert(rows: int) -> str:
    return f"INSERT INTO spans ({', '.join(SPAN_COLUMNS)}) VALUES {', '.join(_SPAN_ROW for _ in range(rows))}"


@cache
def _spans_upsert(rows: int) -> str:
    return f"{_spans_insert(rows)} ON CONFLICT (user_id, trace_id, id) DO UPDATE SET {_SPAN_UPDATED}"


@cache
def _spans_select(ids: int) -> str:
    return (
        f"SELECT {', '.join(SPAN_COLUMNS)} FROM spans WHERE user_id = ? AND trace_id = ? "
        f"AND id IN ({', '.join('?' for _ in range(ids))})"
    )


class SqliteStore:
    dialect = "sqlite"

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def lock_trace(self, user_id: str, trace_id: str) -> None:
        """The writer thread is the only writer of its file in this process."""

    def load_trace(self, user_id: str, trace_id: str) -> dict[str, Any] | None:
        row = self._connection.execute(_TRACE_SELECT, (user_id, trace_id)).fetchone()
        return dict(zip(TRACE_COLUMNS, row, strict=True)) if row is not None else None

    def load_spans(self, user_id: str, trace_id: str, span_ids: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(span_ids), _IDS_PER_QUERY):
            chunk = span_ids[start : start + _IDS_PER_QUERY]
            for row in self._connection.execute(_spans_select(len(chunk)), (user_id, trace_id, *chunk)):
                found[row[0]] = dict(zip(SPAN_COLUMNS, row, strict=True))
        return found

    def load_trace_spans(self, user_id: str, trace_id: str) -> list[dict[str, Any]]:
        rows = self._connection.execute(_TRACE_SPANS, (user_id, trace_id))
        return [dict(zip(SPAN_COLUMNS, row, strict=True)) for row in rows]

    def insert_trace(self, row: dict[str, Any]) -> bool:
        cursor = self._connection.execute(_TRACE_INSERT, [row[c] for c in TRACE_COLUMNS])
        return cursor.rowcount == 1

    def update_trace(self, user_id: str, trace_id: str, values: dict[str, Any]) -> None:
        if values:
            assignments = ", ".join(f"{column} = ?" for column in values)
            self._connection.execute(
                f"UPDATE traces SET {assignments} WHERE user_id = ? AND id = ?",
                [*values.values(), user_id, trace_id],
            )

    def insert_spans(self, rows: list[dict[str, Any]]) -> None:
        self._write_spans(rows, _spans_insert)

    def update_spans(self, rows: list[dict[str, Any]]) -> None:
        self._write_spans(rows, _spans_upsert)

    def _write_spans(self, rows: list[dict[str, Any]], statement: Any) -> None:
        for start in range(0, len(rows), ROWS_PER_STATEMENT):
            chunk = rows[start : start + ROWS_PER_STATEMENT]
            self._connection.execute(
                statement(len(chunk)), [row.get(c) for row in chunk for c in SPAN_COLUMNS]
            )

    def span_totals(self, user_id: str, trace_id: str) -> SpanTotals:
        count, tokens, cost, with_tokens, with_cost = self._connection.execute(
            _SPAN_TOTALS, (user_id, trace_id)
        ).fetchone()
        return SpanTotals(count, tokens if with_tokens else None, cost if with_cost else None)

    def delete_trace(self, user_id: str, trace_id: str) -> bool:
        cursor = self._connection.execute(
            "DELETE FROM traces WHERE user_id = ? AND id = ?", (user_id, trace_id)
        )
        return cursor.rowcount == 1

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        self._connection.execute("SAVEPOINT ingest_write")
        try:
            yield
        except BaseException:
            self._connection.execute("ROLLBACK TO ingest_write")
            self._connection.execute("RELEASE ingest_write")
            raise
        self._connection.execute("RELEASE ingest_write")

    def sql(self) -> Connection:
        return _sqlalchemy_connection(self._connection)


class _Borrowed:
    """The writer's connection lent to SQLAlchemy, which must not end the writer's transactions."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass

    def close(self) -> None:
        pass


# By the id of the writer's connection (which cannot be weakly referenced); a writer reopens its
# connection only when its file is replaced, so a handful of entries is plenty.
_LENT: dict[int, tuple[sqlite3.Connection, Connection]] = {}
_LENT_KEPT = 4


def _sqlalchemy_connection(connection: sqlite3.Connection) -> Connection:
    entry = _LENT.get(id(connection))
    if entry is not None and entry[0] is connection:
        return entry[1]
    engine = create_engine(
        "sqlite://", creator=lambda: _Borrowed(connection), poolclass=StaticPool, json_serializer=json_text
    )
    while len(_LENT) >= _LENT_KEPT:
        _LENT.pop(next(iter(_LENT)))
    lent = engine.connect()
    _LENT[id(connection)] = (connection, lent)
    return lent
