"""The SQLite fast path of creating a trace: one statement on the writer thread.

A new trace and all its spans go in through a temporary view whose trigger writes both, so the
writer thread takes the GIL once per request instead of once per span (and statement) while the
event loop wants it too, and needs no savepoint, since SQLite undoes a failed statement whole.
The spans arrive as one JSON array of rows, encoded on the event loop by orjson.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from functools import partial
from typing import Any

import orjson
from sqlalchemy import JSON

from retrace_server.db.engine import Database, json_text
from retrace_server.db.types import UtcDateTime, sqlite_timestamp
from retrace_server.traces.models import SPAN_ROW_COLUMNS, Trace

_TRACE_TABLE_COLUMNS = list(Trace.__table__.columns)


def _span_field(column: Any) -> str:
    """The SQL reading one column of a span row from `json_each` (see `_span_rows_json`)."""
    path = f"value ->> '$.{column.name}'"
    if isinstance(column.type, JSON):
        return f"value -> '$.{column.name}'"  # JSON text, as the JSON columns store it
    if isinstance(column.type, UtcDateTime):
        # orjson leaves out zero microseconds; stored timestamps are fixed-width (`sqlite_timestamp`).
        return f"CASE WHEN length({path}) = 20 THEN substr({path}, 1, 19) || '.000000Z' ELSE {path} END"
    return path


_INGEST_COLUMNS = [c.name for c in _TRACE_TABLE_COLUMNS]
_INGEST_VIEW_SQL = (
    f"CREATE TEMP VIEW IF NOT EXISTS trace_ingest ({', '.join(_INGEST_COLUMNS)}, spans) "
    f"AS SELECT {', '.join('NULL' for _ in _INGEST_COLUMNS)}, NULL"
)
_INGEST_TRIGGER_SQL = (
    "CREATE TEMP TRIGGER IF NOT EXISTS trace_ingest_insert INSTEAD OF INSERT ON trace_ingest BEGIN "
    f"INSERT INTO traces ({', '.join(_INGEST_COLUMNS)}) "
    f"VALUES ({', '.join(f'new.{c}' for c in _INGEST_COLUMNS)}); "
    f"INSERT INTO spans ({', '.join(c.name for c in SPAN_ROW_COLUMNS)}) "
    f"SELECT {', '.join(_span_field(c) for c in SPAN_ROW_COLUMNS)} FROM json_each(new.spans); "
    "END"
)
_INGEST_SQL = f"INSERT INTO trace_ingest VALUES ({', '.join('?' for _ in _INGEST_COLUMNS)}, ?)"


def _prepare_ingest(connection: sqlite3.Connection) -> None:
    connection.execute(_INGEST_VIEW_SQL)
    connection.execute(_INGEST_TRIGGER_SQL)


def _span_rows_json(spans: list[dict[str, Any]]) -> str:
    return orjson.dumps(
        spans, option=orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC | orjson.OPT_NON_STR_KEYS
    ).decode()


def _sqlite_params(trace: dict[str, Any], spans: list[dict[str, Any]]) -> tuple[list[Any], str]:
    """Statement parameters, built on the event loop so the writer thread only writes."""
    trace_params = []
    for column in _TRACE_TABLE_COLUMNS:
        value = trace["metadata_" if column.name == "metadata" else column.name]
        if isinstance(column.type, JSON):
            value = json_text(value)
        elif isinstance(value, datetime):
            value = sqlite_timestamp(value)
        trace_params.append(value)
    return trace_params, _span_rows_json(spans)


def _insert(trace: list[Any], spans: str, connection: sqlite3.Connection) -> None:
    connection.execute(_INGEST_SQL, (*trace, spans))


async def insert_trace(db: Database, trace: dict[str, Any], spans: list[dict[str, Any]]) -> None:
    """Stores a new trace (`trace_row` values) and its span rows; raises sqlite3.IntegrityError
    when the trace id is taken."""
    await db.write_sqlite_direct(
        partial(_insert, *_sqlite_params(trace, spans)), setup=_prepare_ingest, one_statement=True
    )
