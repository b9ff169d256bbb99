"""Tapes: public, frozen and redacted snapshots of traces.

Revision ID: 0003_tapes
Revises: 0001_foundation
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003_tapes"
down_revision: str | Sequence[str] | None = "0001_foundation"
branch_labels: str | Sequence[str] | None = ("tapes",)
depends_on: str | Sequence[str] | None = None

# Aware UTC timestamps: timestamptz on PostgreSQL, sortable ISO text on SQLite.
_UTC_DATETIME = sa.DateTime(timezone=True).with_variant(sa.String(32), "sqlite")
# JSONB on PostgreSQL, JSON text on SQLite.
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "tapes",
        sa.Column("slug", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.String(128), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("trace_id", sa.String(128), nullable=False),
        sa.Column("title", sa.String(512), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("visibility", sa.String(16), nullable=False),
        sa.Column("trace", _JSON, nullable=False),
        sa.Column("spans", _JSON, nullable=False),
        sa.Column("span_count", sa.Integer(), nullable=False),
        sa.Column("redacted_count", sa.Integer(), nullable=False),
        sa.Column("redactions", _JSON, nullable=False),
        sa.Column("view_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", _UTC_DATETIME, nullable=False),
    )
    op.create_index("ix_tapes_visibility_created", "tapes", ["visibility", "created_at"])
    op.create_index("ix_tapes_user_created", "tapes", ["user_id", "created_at"])


def downgrade() -> None:
    op.drop_table("tapes")
