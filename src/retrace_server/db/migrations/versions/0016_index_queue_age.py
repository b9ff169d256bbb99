"""Each span waiting in the semantic indexing queue records since when (`queued_at`).

Revision ID: 0016_index_queue_age
Revises: 0010_search_index_file
Create Date: 2026-12-01

The age of the oldest waiting span is what `/health` and the indexer's log report. The column
has a database default, so the triggers that queue spans stay as they are; a span queued again
before it was embedded keeps its first time. SQLite cannot add a column whose default is not a
constant, so there the table is copied into a new one.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016_index_queue_age"
down_revision: str | Sequence[str] | None = "0010_search_index_file"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The text form of every SQLite timestamp of the schema: ISO 8601 UTC, ending in Z.
SQLITE_NOW = "(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"


def _sqlite_rebuild(*, with_queued_at: bool) -> None:
    """Recreates the queue under its own name (no rename: the triggers on spans name it)."""
    queued_at = f", queued_at VARCHAR(32) NOT NULL DEFAULT {SQLITE_NOW}" if with_queued_at else ""
    op.execute(
        "CREATE TEMPORARY TABLE span_index_queue_copy AS "
        "SELECT span_pk, seq, claimed_until FROM span_index_queue"
    )
    op.execute("DROP TABLE span_index_queue")
    op.execute(
        "CREATE TABLE span_index_queue (span_pk BIGINT NOT NULL, seq INTEGER DEFAULT '1' NOT NULL, "
        f"claimed_until VARCHAR(32){queued_at}, PRIMARY KEY (span_pk))"
    )
    op.execute(
        "INSERT INTO span_index_queue (span_pk, seq, claimed_until) "
        "SELECT span_pk, seq, claimed_until FROM span_index_queue_copy"
    )
    op.execute("DROP TABLE span_index_queue_copy")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_rebuild(with_queued_at=True)
    else:
        op.execute(
            "ALTER TABLE span_index_queue "
            "ADD COLUMN queued_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_rebuild(with_queued_at=False)
    else:
        op.execute("ALTER TABLE span_index_queue DROP COLUMN queued_at")
