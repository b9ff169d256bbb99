"""The SQLite fast path of creating a trace: a few statements on the writer thread.

The spans go in through multi-row `INSERT ... VALUES` statements whose parameters are built on
the event loop, so SQLite binds the values rather than parsing each span out of JSON text (which
cost more than storing it), and the writer thread takes the GIL once per statement rather than
once per span, as `executemany` would. A temporary view whose trigger stored the trace and its
spans in one statement took the GIL less often still, but cost the writer 80% more work.
"""

from __future__ import annotations

import sqlite3
from functools import cache, partial
from operator import itemgetter
from typing import Any

from sqlalchemy import JSON

from retrace_server.db.engine import Database, json_text
from retrace_server.db.types import UtcDateTime, sqlite_timestamp
from retrace_server.traces.models import SPAN_ROW_COLUMNS, Trace

# Each batch size is a statement to prepare (and cache): longer batches go in several.
ROWS_PER_STATEMENT = 128

_TRACE_TABLE_COLUMNS = list(Trace.__table__.columns)
_SPAN_COLUMN_NAMES = [c.name for c in SPAN_ROW_COLUMNS]

_TRACE_INSERT = (
    f"INSERT INTO traces ({', '.join(c.name for c in _TRACE_TABLE_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _TRACE_TABLE_COLUMNS)})"
)
_ROW_PLACEHOLDERS = f"({', '.join('?' for _ in _SPAN_COLUMN_NAMES)})"


@cache
def _spans_insert(rows: int) -> str:
    return (
        f"INSERT INTO spans ({', '.join(_SPAN_COLUMN_NAMES)}) "
        f"VALUES {', '.join(_ROW_PLACEHOLDERS for _ in range(rows))}"
    )


class _RowValues:
    """A row's values in column order, as SQLAlchemy would bind them to SQLite: JSON columns as
    JSON text, timestamps as fixed-width text."""

    def __init__(self, columns: list[Any], keys: list[str]) -> None:
        self._fields = itemgetter(*keys)
        self._json = [i for i, c in enumerate(columns) if isinstance(c.type, JSON)]
        self._times = [i for i, c in enumerate(columns) if isinstance(c.type, UtcDateTime)]

    def __call__(self, row: dict[str, Any]) -> list[Any]:
        values = list(self._fields(row))
        for index in self._json:
            values[index] = json_text(values[index])
        for index in self._times:
            if values[index] is not None:
                values[index] = sqlite_timestamp(values[index])
        return values


# A `trace_row` holds the metadata column under `metadata_`; span rows key columns by name.
_trace_values = _RowValues(
    _TRACE_TABLE_COLUMNS, ["metadata_" if c.name == "metadata" else c.name for c in _TRACE_TABLE_COLUMNS]
)
_span_values = _RowValues(SPAN_ROW_COLUMNS, _SPAN_COLUMN_NAMES)


def _statements(trace: dict[str, Any], spans: list[dict[str, Any]]) -> list[tuple[str, list[Any]]]:
    """(statement, parameters) pairs: the trace, then its spans in chunks."""
    statements = [(_TRACE_INSERT, _trace_values(trace))]
    for start in range(0, len(spans), ROWS_PER_STATEMENT):
        chunk = spans[start : start + ROWS_PER_STATEMENT]
        statements.append((_spans_insert(len(chunk)), [v for span in chunk for v in _span_values(span)]))
    return statements


def _insert(statements: list[tuple[str, list[Any]]], connection: sqlite3.Connection) -> None:
    for statement, values in statements:
        connection.execute(statement, values)


async def insert_trace(db: Database, trace: dict[str, Any], spans: list[dict[str, Any]]) -> None:
    """Stores a new trace (`trace_row` values) and its span rows; raises sqlite3.IntegrityError
    when the trace id is taken."""
    statements = _statements(trace, spans)
    await db.write_sqlite_direct(partial(_insert, statements), one_statement=len(statements) == 1)
