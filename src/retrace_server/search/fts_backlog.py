"""Full-text indexing of new SQLite spans, in batches, on the writer thread between writes.

Spans land without touching `spans_fts`: a per-row FTS5 trigger cost more than storing the
span, while one `INSERT ... SELECT` over thousands of spans costs a fraction per span. Until a
span's batch runs (within `INTERVAL` seconds of a quiet moment, or of each other under load),
lexical search reads it directly (`lexical.unindexed_matches`).
"""

from __future__ import annotations

import sqlite3

from retrace_server.db.engine import Database
from retrace_server.search.fts_sql import FTS_COLUMNS, INDEXED_THROUGH, fts_values

INTERVAL = 0.25
# About 50 ms of indexing: writes queued behind a batch wait no longer than that.
BATCH = 5000

_PENDING = f"SELECT (SELECT max(pk) FROM spans) > {INDEXED_THROUGH}"
_RANGE = (
    "SELECT (SELECT max(pk) FROM (SELECT pk FROM spans WHERE pk > :through ORDER BY pk LIMIT :batch)), "
    "(SELECT max(pk) FROM spans)"
)
_INDEX = (
    f"INSERT INTO spans_fts (rowid, {FTS_COLUMNS}) SELECT pk, {fts_values('spans')} FROM spans "
    "WHERE pk > :through AND pk <= :upto"
)


def start(db: Database) -> None:
    """Keeps the full-text index of a SQLite database current for as long as `db` is open."""
    if db.is_sqlite:
        db.start_sqlite_upkeep(index_pending, every=INTERVAL)


def index_pending(connection: sqlite3.Connection, *, batch: int = BATCH) -> bool:
    """Indexes the oldest unindexed spans, up to `batch`; returns whether more remain."""
    if not connection.execute(_PENDING).fetchone()[0]:
        return False
    connection.execute("BEGIN IMMEDIATE")
    try:
        (through,) = connection.execute(f"SELECT {INDEXED_THROUGH}").fetchone()
        upto, newest = connection.execute(_RANGE, {"through": through, "batch": batch}).fetchone()
        if upto is not None:
            connection.execute(_INDEX, {"through": through, "upto": upto})
            connection.execute("UPDATE spans_fts_progress SET indexed_through = ?", (upto,))
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return upto is not None and upto < newest
