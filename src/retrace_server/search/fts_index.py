"""The SQLite full-text index of spans: a file of its own beside the database, kept current by a
thread of its own.

SQLite lets one connection write a file at a time, and indexing a span's text cost a third of the
writer's time when the index shared the database: every request waited behind each batch. In its
own file the index is written while spans are, on the other core. The database records what the
index must forget (`spans_fts_changes`: a changed or deleted span's indexed text, by trigger);
each pass forgets that, indexes those spans' current text and the spans stored since the last
pass, and commits with its marks (`spans_fts_progress`). The index holds nothing the database
lacks: delete the file and it is built again.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from retrace_server.db.background import ConnectionLoop
from retrace_server.db.engine import Database
from retrace_server.search.fts_sql import FTS_COLUMNS, TEXT_COLUMNS, fts_values

INTERVAL = 0.25
# About 50 ms of indexing per commit: bigger batches cost less per span.
BATCH = 5000
RETRY = 5.0

_DDL = [
    # Contentless: the text stays in `spans`. Column-level detail: queries never match phrases.
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {{schema}}.spans_fts USING fts5({FTS_COLUMNS}, content='', "
    "tokenize='porter unicode61', detail=column)",
    "CREATE TABLE IF NOT EXISTS {schema}.spans_fts_progress (id INTEGER PRIMARY KEY CHECK (id = 1), "
    "indexed_through INTEGER NOT NULL, applied_change INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO {schema}.spans_fts_progress VALUES (1, 0, 0)",
]


def index_path(database_path: str) -> str:
    """`retrace.db` keeps its full-text index in `retrace.search.db`."""
    path = Path(database_path)
    return str(path.with_name(f"{path.stem}.search{path.suffix}"))


def missing_schema(schema: str) -> str:
    """SQL counting 0 when the index's tables are not in `schema` yet."""
    return f"SELECT count(*) FROM {schema}.sqlite_master WHERE name = 'spans_fts_progress'"


def schema_ddl(schema: str) -> list[str]:
    return [statement.format(schema=schema) for statement in _DDL]


def ensure_schema(connection: sqlite3.Connection) -> None:
    if not connection.execute(missing_schema("main")).fetchone()[0]:
        for statement in schema_ddl("main"):
            connection.execute(statement)


def connect(database_path: str) -> sqlite3.Connection:
    """The index's file, with the database attached as `data`."""
    connection = sqlite3.connect(index_path(database_path), isolation_level=None, timeout=30)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA busy_timeout=30000")
    ensure_schema(connection)
    connection.execute("ATTACH DATABASE ? AS data", (database_path,))
    return connection


def index_pending(connection: sqlite3.Connection, *, batch: int = BATCH) -> bool:
    """One pass over a `connect` connection; returns whether spans remain unindexed."""
    connection.execute("BEGIN")
    try:
        # A write first takes the index's lock before any snapshot is read (no BEGIN IMMEDIATE:
        # that would take the database's write lock too).
        connection.execute("UPDATE main.spans_fts_progress SET indexed_through = indexed_through")
        through, applied = connection.execute(
            "SELECT indexed_through, applied_change FROM main.spans_fts_progress"
        ).fetchone()
        changes = connection.execute(
            f"SELECT seq, span_pk, {FTS_COLUMNS} FROM data.spans_fts_changes WHERE seq > ? ORDER BY seq",
            (applied,),
        ).fetchall()
        (newest,) = connection.execute("SELECT coalesce(max(pk), 0) FROM data.spans").fetchone()
        through = _apply_changes(connection, changes, through=through, newest=newest)
        (upto,) = connection.execute(
            "SELECT max(pk) FROM (SELECT pk FROM data.spans WHERE pk > ? ORDER BY pk LIMIT ?)",
            (through, batch),
        ).fetchone()
        if upto is not None:
            connection.execute(
                f"INSERT INTO main.spans_fts (rowid, {FTS_COLUMNS}) SELECT pk, {fts_values('s')} "
                "FROM data.spans s WHERE pk > ? AND pk <= ?",
                (through, upto),
            )
            through = upto
        last_change = changes[-1][0] if changes else applied
        connection.execute(
            "UPDATE main.spans_fts_progress SET indexed_through = ?, applied_change = ?",
            (through, last_change),
        )
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    if changes:
        connection.execute("DELETE FROM data.spans_fts_changes WHERE seq <= ?", (last_change,))
    return bool(through < newest)


def _apply_changes(
    connection: sqlite3.Connection, changes: list[tuple[Any, ...]], *, through: int, newest: int
) -> int:
    """Forgets the indexed text of changed spans and indexes their current text; returns the
    mark, stepped back below keys that no longer exist (SQLite reuses the newest key)."""
    indexed_text: dict[int, tuple[Any, ...]] = {}
    for change in changes:
        # The earliest change since the last pass holds the text the index has.
        indexed_text.setdefault(change[1], change[2:])
    for span_pk, old_text in indexed_text.items():
        if span_pk <= through:
            connection.execute(
                f"INSERT INTO main.spans_fts (spans_fts, rowid, {FTS_COLUMNS}) "
                f"VALUES ('delete', ?, {', '.join('?' for _ in TEXT_COLUMNS)})",
                (span_pk, *old_text),
            )
    through = min(through, newest)
    current = sorted(pk for pk in indexed_text if pk <= through)
    for start in range(0, len(current), 500):
        keys = current[start : start + 500]
        connection.execute(
            f"INSERT INTO main.spans_fts (rowid, {FTS_COLUMNS}) SELECT pk, {fts_values('s')} "
            f"FROM data.spans s WHERE pk IN ({', '.join('?' for _ in keys)})",
            keys,
        )
    return through


def start(db: Database) -> ConnectionLoop | None:
    """Keeps the full-text index of a SQLite database current until `stop`: a pass at once
    while spans wait, else every `INTERVAL`."""
    if not db.is_sqlite:
        return None
    database_path = str(db.engine.url.database)
    # The schema exists before any search attaches the file.
    connect(database_path).close()
    indexer = ConnectionLoop(
        "retrace-fts-indexer",
        connect=lambda: connect(database_path),
        step=lambda connection: 0.0 if index_pending(connection) else INTERVAL,
        first_wait=0.0,
        retry=RETRY,
    )
    indexer.start()
    return indexer
