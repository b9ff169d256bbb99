"""The SQLite full-text index of spans moves to a file of its own (`search.fts_index`).

Revision ID: 0010_search_index_file
Revises: 0008_lexical_backlog
Create Date: 2026-11-30

Indexing in the database held its one write lock, so every request waited behind each batch.
Triggers now record what the index must forget when an indexed span changes or goes
(`spans_fts_changes`, the text as indexed); the indexer thread builds the new file from the
spans on its first pass. PostgreSQL keeps its generated tsvector column.
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alembic import op

from retrace_server.search.fts_sql import (
    ENQUEUE_FOR_EMBEDDING,
    FTS_COLUMNS,
    TEXT_COLUMNS,
    fts_values,
    sqlite_text_changed,
)

revision: str = "0010_search_index_file"
down_revision: str | Sequence[str] | None = "0008_lexical_backlog"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RECORD_OLD_TEXT = (
    f"INSERT INTO spans_fts_changes (span_pk, {FTS_COLUMNS}) VALUES (old.pk, {fts_values('old')})"
)
_TRIGGERS = ("spans_search_update", "spans_search_delete")

SQLITE_DDL = [
    "DROP TRIGGER spans_search_update",
    "DROP TRIGGER spans_search_delete",
    "DROP TABLE spans_fts",
    "DROP TABLE spans_fts_progress",
    "CREATE TABLE spans_fts_changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, span_pk INTEGER NOT NULL, "
    f"{', '.join(f'{c} TEXT' for c in TEXT_COLUMNS)})",
    f"""CREATE TRIGGER spans_search_update AFTER UPDATE ON spans WHEN {sqlite_text_changed()} BEGIN
        {_RECORD_OLD_TEXT};
        {ENQUEUE_FOR_EMBEDDING};
    END""",
    f"""CREATE TRIGGER spans_search_delete AFTER DELETE ON spans BEGIN
        {_RECORD_OLD_TEXT};
        DELETE FROM span_index_queue WHERE span_pk = old.pk;
    END""",
]


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for statement in SQLITE_DDL:
        op.execute(statement)


def downgrade() -> None:
    """Back to an empty in-database index with nothing indexed: 0008's downgrade fills it."""
    if op.get_bind().dialect.name != "sqlite":
        return
    for trigger in _TRIGGERS:
        op.execute(f"DROP TRIGGER {trigger}")
    op.execute("DROP TABLE spans_fts_changes")
    op.execute(_revision("0005_search_memory").SQLITE_DDL[0])
    for statement in _revision("0008_lexical_backlog").SQLITE_DDL:
        if statement.startswith("INSERT INTO spans_fts_progress"):
            op.execute("INSERT INTO spans_fts_progress (id, indexed_through) VALUES (1, 0)")
        elif not statement.startswith("DROP TRIGGER") and "spans_search_insert" not in statement:
            op.execute(statement)


def _revision(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"_{name}", Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
