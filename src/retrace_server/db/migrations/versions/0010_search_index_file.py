"""The SQLite full-text index of spans moves to a file of its own (`search.fts_index`).

Revision ID: 0010_search_index_file
Revises: 0008_lexical_backlog
Create Date: 2026-11-30

Indexing in the database held its one write lock, so every request waited behind each batch.
Triggers now record what the index must forget when an indexed span changes or goes
(`spans_fts_changes`, the text as indexed); the indexer thread builds the new file from the
spans on its first pass. PostgreSQL keeps its generated tsvector column.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010_search_index_file"
down_revision: str | Sequence[str] | None = "0008_lexical_backlog"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The indexed columns, and the first 8000 characters of the long ones.
_FTS_COLUMNS = "name, span_type, model, error, input, output"
_NEW = (
    "new.name, new.span_type, new.model, substr(new.error, 1, 8000), substr(new.input, 1, 8000), "
    "substr(new.output, 1, 8000)"
)
_OLD = (
    "old.name, old.span_type, old.model, substr(old.error, 1, 8000), substr(old.input, 1, 8000), "
    "substr(old.output, 1, 8000)"
)
_TEXT_CHANGED = (
    "old.name IS NOT new.name OR old.span_type IS NOT new.span_type OR old.model IS NOT new.model "
    "OR old.error IS NOT new.error OR old.input IS NOT new.input OR old.output IS NOT new.output"
)
_ENQUEUE = (
    "INSERT INTO span_index_queue (span_pk, seq) VALUES (new.pk, 1) "
    "ON CONFLICT (span_pk) DO UPDATE SET seq = span_index_queue.seq + 1, claimed_until = NULL"
)

_RECORD_OLD_TEXT = f"INSERT INTO spans_fts_changes (span_pk, {_FTS_COLUMNS}) VALUES (old.pk, {_OLD})"
_TRIGGERS = ("spans_search_update", "spans_search_delete")

SQLITE_DDL = [
    "DROP TRIGGER spans_search_update",
    "DROP TRIGGER spans_search_delete",
    "DROP TABLE spans_fts",
    "DROP TABLE spans_fts_progress",
    "CREATE TABLE spans_fts_changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, span_pk INTEGER NOT NULL, "
    "name TEXT, span_type TEXT, model TEXT, error TEXT, input TEXT, output TEXT)",
    f"""CREATE TRIGGER spans_search_update AFTER UPDATE ON spans WHEN {_TEXT_CHANGED} BEGIN
        {_RECORD_OLD_TEXT};
        {_ENQUEUE};
    END""",
    f"""CREATE TRIGGER spans_search_delete AFTER DELETE ON spans BEGIN
        {_RECORD_OLD_TEXT};
        DELETE FROM span_index_queue WHERE span_pk = old.pk;
    END""",
]

# 0008's in-database index, empty and marked as holding no span, with its update and delete
# triggers; 0008's downgrade then indexes every span and puts 0005's triggers back.
_INDEXED = "old.pk <= (SELECT indexed_through FROM spans_fts_progress)"
_NEWEST_SPAN = "(SELECT coalesce(max(pk), 0) FROM spans)"
SQLITE_DOWNGRADE = [
    f"CREATE VIRTUAL TABLE spans_fts USING fts5({_FTS_COLUMNS}, content='spans', content_rowid='pk', "
    "tokenize='porter unicode61', detail=column)",
    "CREATE TABLE spans_fts_progress "
    "(id INTEGER PRIMARY KEY CHECK (id = 1), indexed_through INTEGER NOT NULL)",
    "INSERT INTO spans_fts_progress (id, indexed_through) VALUES (1, 0)",
    f"""CREATE TRIGGER spans_search_update AFTER UPDATE ON spans WHEN {_TEXT_CHANGED} BEGIN
        INSERT INTO spans_fts (spans_fts, rowid, {_FTS_COLUMNS})
            SELECT 'delete', old.pk, {_OLD} WHERE {_INDEXED};
        INSERT INTO spans_fts (rowid, {_FTS_COLUMNS}) SELECT new.pk, {_NEW} WHERE {_INDEXED};
        {_ENQUEUE};
    END""",
    f"""CREATE TRIGGER spans_search_delete AFTER DELETE ON spans BEGIN
        INSERT INTO spans_fts (spans_fts, rowid, {_FTS_COLUMNS})
            SELECT 'delete', old.pk, {_OLD} WHERE {_INDEXED};
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
    for trigger in _TRIGGERS:
        op.execute(f"DROP TRIGGER {trigger}")
    op.execute("DROP TABLE spans_fts_changes")
    for statement in SQLITE_DOWNGRADE:
        op.execute(statement)
