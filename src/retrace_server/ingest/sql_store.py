"""The PostgreSQL statements of a write, on a SQLAlchemy connection inside `run_sync`.

Values arrive in stored form (`ingest.rows`): JSON and timestamps as text, cast here on the way
in and rendered back as the same text on the way out, so the rules in `ingest.merge` see the same
values on either database.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy import TextClause, bindparam, text
from sqlalchemy.engine import Connection

from retrace_server.ingest.merge import SPAN_COLUMNS, TRACE_COLUMNS, SpanTotals

_JSON = frozenset(("input", "output", "metadata"))
_TIMES = frozenset(("started_at", "ended_at", "last_activity_at", "created_at", "updated_at"))
_TIME_TEXT = """to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""


def _value(column: str) -> str:
    # asyncpg types a parameter by its context: cast from text, so text is what it accepts.
    if column in _JSON:
        return f"CAST(CAST(:{column} AS TEXT) AS JSONB)"
    if column in _TIMES:
        return f"CAST(CAST(:{column} AS TEXT) AS TIMESTAMPTZ)"
    return f":{column}"


def _read(column: str) -> str:
    if column in _JSON:
        return f"{column}::text AS {column}"
    if column in _TIMES:
        return f"{_TIME_TEXT.format(column=column)} AS {column}"
    return column


_TRACE_INSERT = text(
    f"INSERT INTO traces ({', '.join(TRACE_COLUMNS)}) VALUES ({', '.join(_value(c) for c in TRACE_COLUMNS)}) "
    "ON CONFLICT (user_id, id) DO NOTHING"
)
_TRACE_SELECT = text(
    f"SELECT {', '.join(_read(c) for c in TRACE_COLUMNS)} FROM traces WHERE user_id = :user_id AND id = :id"
)
_SPAN_INSERT = (
    f"INSERT INTO spans ({', '.join(SPAN_COLUMNS)}) VALUES ({', '.join(_value(c) for c in SPAN_COLUMNS)})"
)
_SPAN_UPSERT = text(
    f"{_SPAN_INSERT} ON CONFLICT (user_id, trace_id, id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in SPAN_COLUMNS if c not in ("id", "trace_id", "user_id"))
)
_SPAN_SELECT = text(
    f"SELECT {', '.join(_read(c) for c in SPAN_COLUMNS)} FROM spans "
    "WHERE user_id = :user_id AND trace_id = :trace_id AND id IN :ids"
).bindparams(bindparam("ids", expanding=True))
_TRACE_SPANS = text(
    f"SELECT {', '.join(_read(c) for c in SPAN_COLUMNS)} FROM spans "
    "WHERE user_id = :user_id AND trace_id = :trace_id ORDER BY started_at, pk"
)
_SPAN_TOTALS = text(
    "SELECT count(*), sum(coalesce(input_tokens, 0) + coalesce(output_tokens, 0)), sum(cost), "
    "count(input_tokens) + count(output_tokens), count(cost) FROM spans "
    "WHERE user_id = :user_id AND trace_id = :trace_id"
)
_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")


class SqlStore:
    dialect = "postgresql"

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def lock_trace(self, user_id: str, trace_id: str) -> None:
        """Parts of one trace can reach two processes at once (an exporter retrying, a stream
        reconnecting while the old socket drains): each trace's read-merge-write runs alone."""
        self._connection.execute(_LOCK, {"key": f"{len(user_id)}:{user_id}{trace_id}"})

    def load_trace(self, user_id: str, trace_id: str) -> dict[str, Any] | None:
        row = self._connection.execute(_TRACE_SELECT, {"user_id": user_id, "id": trace_id}).first()
        return dict(row._mapping) if row is not None else None

    def load_spans(self, user_id: str, trace_id: str, span_ids: list[str]) -> dict[str, dict[str, Any]]:
        rows = self._connection.execute(
            _SPAN_SELECT, {"user_id": user_id, "trace_id": trace_id, "ids": span_ids}
        )
        return {row.id: dict(row._mapping) for row in rows}

    def load_trace_spans(self, user_id: str, trace_id: str) -> list[dict[str, Any]]:
        rows = self._connection.execute(_TRACE_SPANS, {"user_id": user_id, "trace_id": trace_id})
        return [dict(row._mapping) for row in rows]

    def insert_trace(self, row: dict[str, Any]) -> bool:
        result = self._connection.execute(_TRACE_INSERT, row)
        return bool(result.rowcount == 1)

    def update_trace(self, user_id: str, trace_id: str, values: dict[str, Any]) -> None:
        if values:
            assignments = ", ".join(f"{column} = {_value(column)}" for column in values)
            statement: TextClause = text(
                f"UPDATE traces SET {assignments} WHERE user_id = :_user AND id = :_id"
            )
            self._connection.execute(statement, {**values, "_user": user_id, "_id": trace_id})

    def insert_spans(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            self._connection.execute(text(_SPAN_INSERT), [_complete(row) for row in rows])

    def update_spans(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            self._connection.execute(_SPAN_UPSERT, [_complete(row) for row in rows])

    def span_totals(self, user_id: str, trace_id: str) -> SpanTotals:
        count, tokens, cost, with_tokens, with_cost = self._connection.execute(
            _SPAN_TOTALS, {"user_id": user_id, "trace_id": trace_id}
        ).one()
        return SpanTotals(count, int(tokens) if with_tokens else None, float(cost) if with_cost else None)

    def delete_trace(self, user_id: str, trace_id: str) -> bool:
        result = self._connection.execute(
            text("DELETE FROM traces WHERE user_id = :user_id AND id = :id"),
            {"user_id": user_id, "id": trace_id},
        )
        return bool(result.rowcount == 1)

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        with self._connection.begin_nested():
            yield

    def sql(self) -> Connection:
        return self._connection


def _complete(row: dict[str, Any]) -> dict[str, Any]:
    return {column: row.get(column) for column in SPAN_COLUMNS}
