"""The SQLite fast path of creating a trace: one statement on the writer thread.

The trace and its spans go in as the rows of one multi-row `INSERT ... VALUES` into a temporary
view, whose trigger stores the first row in `traces` and the rest in `spans`. Its parameters
are built on the event loop; the writer thread then takes the GIL once per request, not once per
span (as `executemany` does) or per statement, and a waiting writer is what limited ingestion.
SQLite binds the values rather than parsing each span out of JSON text, which cost more than
storing it. One statement needs no savepoint either: SQLite undoes a failed statement whole.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from functools import cache, partial
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import JSON

from retrace_server.db.engine import Database, json_text
from retrace_server.db.types import UtcDateTime, sqlite_timestamp
from retrace_server.traces.models import SPAN_ROW_COLUMNS, Trace

# Longer traces take more statements (under a savepoint); this bounds the statements to prepare.
ROWS_PER_STATEMENT = 128

_TRACE_TABLE_COLUMNS = list(Trace.__table__.columns)
# (row key, JSON key, column): SQLAlchemy's names are a str subclass, which orjson refuses as keys.
_TRACE_FIELDS_IN = [
    ("metadata_" if c.name == "metadata" else c.name, str(c.name), c) for c in _TRACE_TABLE_COLUMNS
]
_SPAN_COLUMN_NAMES = [c.name for c in SPAN_ROW_COLUMNS]
_span_fields = itemgetter(*_SPAN_COLUMN_NAMES)
# Positions in a view row (after `trace`) of the values stored as JSON text and as timestamps.
_JSON_SPAN_VALUES = [i + 1 for i, c in enumerate(SPAN_ROW_COLUMNS) if isinstance(c.type, JSON)]
_TIME_SPAN_VALUES = [i + 1 for i, c in enumerate(SPAN_ROW_COLUMNS) if isinstance(c.type, UtcDateTime)]

_TRACE_FIELDS = [f"new.trace ->> '$.{c.name}'" for c in _TRACE_TABLE_COLUMNS]
# The view's rows: a trace (as JSON in `trace`, span columns NULL) or a span (`trace` NULL).
_VIEW_SQL = (
    f"CREATE TEMP VIEW IF NOT EXISTS trace_ingest (trace, {', '.join(_SPAN_COLUMN_NAMES)}) "
    f"AS SELECT NULL, {', '.join('NULL' for _ in _SPAN_COLUMN_NAMES)}"
)
_TRIGGER_SQL = (
    "CREATE TEMP TRIGGER IF NOT EXISTS trace_ingest_insert INSTEAD OF INSERT ON trace_ingest BEGIN "
    f"INSERT INTO traces ({', '.join(c.name for c in _TRACE_TABLE_COLUMNS)}) "
    f"SELECT {', '.join(_TRACE_FIELDS)} "
    "WHERE new.trace IS NOT NULL; "
    f"INSERT INTO spans ({', '.join(_SPAN_COLUMN_NAMES)}) "
    f"SELECT {', '.join(f'new.{name}' for name in _SPAN_COLUMN_NAMES)} WHERE new.trace IS NULL; "
    "END"
)
_ROW_PLACEHOLDERS = f"({', '.join('?' for _ in range(len(_SPAN_COLUMN_NAMES) + 1))})"
_TRACE_ROW_NULLS = [None] * len(_SPAN_COLUMN_NAMES)


@cache
def _ingest_statement(rows: int) -> str:
    return f"INSERT INTO trace_ingest VALUES {', '.join(_ROW_PLACEHOLDERS for _ in range(rows))}"


def _prepare(connection: sqlite3.Connection) -> None:
    connection.execute(_VIEW_SQL)
    connection.execute(_TRIGGER_SQL)


def _sqlite_value(column: Any, value: Any) -> Any:
    """A value as SQLAlchemy would bind it to a SQLite column."""
    if isinstance(column.type, JSON):
        return json_text(value)
    if isinstance(value, datetime):
        return sqlite_timestamp(value)
    return value


def _trace_json(trace: dict[str, Any]) -> str:
    row = {name: _sqlite_value(column, trace[key]) for key, name, column in _TRACE_FIELDS_IN}
    return orjson.dumps(row).decode()


def _span_values(row: dict[str, Any]) -> list[Any]:
    """A span's row of the view: `trace` (NULL), then its columns as SQLite stores them."""
    values = [None, *_span_fields(row)]
    for index in _JSON_SPAN_VALUES:
        values[index] = json_text(values[index])
    for index in _TIME_SPAN_VALUES:
        if values[index] is not None:
            values[index] = sqlite_timestamp(values[index])
    return values


def _statements(trace: dict[str, Any], spans: list[dict[str, Any]]) -> list[tuple[str, list[Any]]]:
    """(statement, parameters) pairs: the trace with its first spans, then the rest in chunks."""
    rows = [[_trace_json(trace), *_TRACE_ROW_NULLS], *(_span_values(span) for span in spans)]
    statements = []
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk = rows[start : start + ROWS_PER_STATEMENT]
        statements.append((_ingest_statement(len(chunk)), [value for row in chunk for value in row]))
    return statements


def _insert(statements: list[tuple[str, list[Any]]], connection: sqlite3.Connection) -> None:
    for statement, values in statements:
        connection.execute(statement, values)


async def insert_trace(db: Database, trace: dict[str, Any], spans: list[dict[str, Any]]) -> None:
    """Stores a new trace (`trace_row` values) and its span rows; raises sqlite3.IntegrityError
    when the trace id is taken."""
    statements = _statements(trace, spans)
    await db.write_sqlite_direct(
        partial(_insert, statements), setup=_prepare, one_statement=len(statements) == 1
    )
