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

from collections.abc import Sequence

from alembic import op

revision: str = "0008_lexical_backlog"
down_revision: str | Sequence[str] | None = "0005_search_memory"
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
_EXISTING = (
    "spans.name, spans.span_type, spans.model, substr(spans.error, 1, 8000), "
    "substr(spans.input, 1, 8000), substr(spans.output, 1, 8000)"
)
_TEXT_CHANGED = (
    "old.name IS NOT new.name OR old.span_type IS NOT new.span_type OR old.model IS NOT new.model "
    "OR old.error IS NOT new.error OR old.input IS NOT new.input OR old.output IS NOT new.output"
)
_ENQUEUE = (
    "INSERT INTO span_index_queue (span_pk, seq) VALUES (new.pk, 1) "
    "ON CONFLICT (span_pk) DO UPDATE SET seq = span_index_queue.seq + 1, claimed_until = NULL"
)

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
        {_ENQUEUE};
    END""",
    f"""CREATE TRIGGER spans_search_update AFTER UPDATE ON spans WHEN {_TEXT_CHANGED} BEGIN
        INSERT INTO spans_fts (spans_fts, rowid, {_FTS_COLUMNS})
            SELECT 'delete', old.pk, {_OLD} WHERE {_INDEXED};
        INSERT INTO spans_fts (rowid, {_FTS_COLUMNS}) SELECT new.pk, {_NEW} WHERE {_INDEXED};
        {_ENQUEUE};
    END""",
    # Without AUTOINCREMENT, SQLite reuses the key of the newest span once it is deleted: the
    # mark steps back below it, so a new span that takes the key is still indexed.
    f"""CREATE TRIGGER spans_search_delete AFTER DELETE ON spans BEGIN
        INSERT INTO spans_fts (spans_fts, rowid, {_FTS_COLUMNS})
            SELECT 'delete', old.pk, {_OLD} WHERE {_INDEXED};
        UPDATE spans_fts_progress SET indexed_through = {_NEWEST_SPAN}
            WHERE indexed_through > {_NEWEST_SPAN};
        DELETE FROM span_index_queue WHERE span_pk = old.pk;
    END""",
]

# 0005's triggers, which index every span as it is written: a downgrade puts them back.
PER_ROW_TRIGGERS = [
    f"""CREATE TRIGGER spans_search_insert AFTER INSERT ON spans BEGIN
        INSERT INTO spans_fts (rowid, {_FTS_COLUMNS}) VALUES (new.pk, {_NEW});
        {_ENQUEUE};
    END""",
    f"""CREATE TRIGGER spans_search_update AFTER UPDATE ON spans WHEN {_TEXT_CHANGED} BEGIN
        INSERT INTO spans_fts (spans_fts, rowid, {_FTS_COLUMNS}) VALUES ('delete', old.pk, {_OLD});
        INSERT INTO spans_fts (rowid, {_FTS_COLUMNS}) VALUES (new.pk, {_NEW});
        {_ENQUEUE};
    END""",
    f"""CREATE TRIGGER spans_search_delete AFTER DELETE ON spans BEGIN
        INSERT INTO spans_fts (spans_fts, rowid, {_FTS_COLUMNS}) VALUES ('delete', old.pk, {_OLD});
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
        f"INSERT INTO spans_fts (rowid, {_FTS_COLUMNS}) SELECT pk, {_EXISTING} FROM spans "
        f"WHERE pk > {INDEXED_THROUGH}"
    )
    for trigger in ("spans_search_insert", "spans_search_update", "spans_search_delete"):
        op.execute(f"DROP TRIGGER {trigger}")
    op.execute("DROP TABLE spans_fts_progress")
    for statement in PER_ROW_TRIGGERS:
        op.execute(statement)
