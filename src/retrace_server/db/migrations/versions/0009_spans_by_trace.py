"""Spans drop their (user_id, started_at) index: no query reads spans that way.

Revision ID: 0009_spans_by_trace
Revises: 0001_foundation
Create Date: 2026-11-30

Spans are read by trace, by primary key (search hits) or through the full-text index. The
index by user and start time served none of them, yet cost a third of SQLite ingestion: spans
of concurrent runs interleave in start time, so every stored span dirtied a page of its own.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009_spans_by_trace"
down_revision: str | Sequence[str] | None = "0001_foundation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_spans_user_started", table_name="spans")


def downgrade() -> None:
    op.create_index("ix_spans_user_started", "spans", ["user_id", "started_at"])
