"""SQLite full-text indexing leaves the write path: spans are indexed in batches after they land.

Revision ID: 0008_lexical_backlog
Revises: 0005_search_memory
Create Date: 2026-11-30

A per-row FTS5 trigger cost more than storing the span itself; one `INSERT ... SELECT` over
thousands of spans costs a fraction per span. `spans_fts_progress.indexed_through` names the
newest span in `spans_fts`: updates and deletes keep indexed spans current, newer spans wait
for `search.fts_backlog`, and lexical search scans them directly meanwhile. PostgreSQL keeps
its generated tsvector column, which the database maintains itself.
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alembic import op

from retrace_server.search.fts_sql import (
    ENQUEUE_FOR_EMBEDDING,
    FTS_COLUMNS,
    fts_values,
    sqlite_text_changed,
)

revision: str = "0008_lexical_backlog"
down_revision: str | Sequence[str] | None = "0005_search_memory"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXED_THROUGH = "(SELECT indexed_through FROM spans_fts_progress)"
_INDEXED = f"old.pk <= {INDEXED_THROUGH}"
_NEWEST_SPAN = "(SELECT coalesce(max(pk), 0) FROM spans)"

SQLITE_DDL = [
    "CREATE TABLE spans_fts_progress "
    "(id INTEGER PRIMARY KEY CHECK (id = 1), indexed_through INTEGER NOT NULL)",
    # Every span stored so far was indexed by the trigger this migration replaces.
    f"INSERT INTO spans_fts_progress (id, indexed_through) VALUES (1, {_NEWEST_SPAN})",
    "DROP TRIGGER spans_search_insert",
    "DROP TRIGGER spans_search_update",
    "DROP TRIGGER spans_search_delete",
    f"""CREATE TRIGGER spans_search_insert AFTER INSERT ON spans BEGIN
        {ENQUEUE_FOR_EMBEDDING};
    END""",
    f"""CREATE TRIGGER spans_search_update AFTER UPDATE ON spans WHEN {sqlite_text_changed()} BEGIN
        INSERT INTO spans_fts (spans_fts, rowid, {FTS_COLUMNS})
            SELECT 'delete', old.pk, {fts_values("old")} WHERE {_INDEXED};
        INSERT INTO spans_fts (rowid, {FTS_COLUMNS}) SELECT new.pk, {fts_values("new")} WHERE {_INDEXED};
        {ENQUEUE_FOR_EMBEDDING};
    END""",
    # Without AUTOINCREMENT, SQLite reuses the key of the newest span once it is deleted: the
    # mark steps back below it, so a new span that takes the key is still indexed.
    f"""CREATE TRIGGER spans_search_delete AFTER DELETE ON spans BEGIN
        INSERT INTO spans_fts (spans_fts, rowid, {FTS_COLUMNS})
            SELECT 'delete', old.pk, {fts_values("old")} WHERE {_INDEXED};
        UPDATE spans_fts_progress SET indexed_through = {_NEWEST_SPAN}
            WHERE indexed_through > {_NEWEST_SPAN};
        DELETE FROM span_index_queue WHERE span_pk = old.pk;
    END""",
]


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for statement in SQLITE_DDL:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(
        f"INSERT INTO spans_fts (rowid, {FTS_COLUMNS}) SELECT pk, {fts_values('spans')} FROM spans "
        f"WHERE pk > {INDEXED_THROUGH}"
    )
    for trigger in ("spans_search_insert", "spans_search_update", "spans_search_delete"):
        op.execute(f"DROP TRIGGER {trigger}")
    op.execute("DROP TABLE spans_fts_progress")
    for statement in _previous_revision().SQLITE_DDL:
        if statement.startswith("CREATE TRIGGER"):
            op.execute(statement)


def _previous_revision() -> Any:
    """0005's module, whose per-row triggers a downgrade puts back."""
    spec = importlib.util.spec_from_file_location(
        "_search_memory", Path(__file__).with_name(f"{down_revision}.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
