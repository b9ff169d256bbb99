"""Tapes: public, frozen and redacted snapshots of traces.

Revision ID: 0003_tapes
Revises: 0001_foundation
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from retrace_server.db.types import JsonColumn, UtcDateTime

revision: str = "0003_tapes"
down_revision: str | Sequence[str] | None = "0001_foundation"
branch_labels: str | Sequence[str] | None = ("tapes",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tapes",
        sa.Column("slug", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.String(128), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("trace_id", sa.String(128), nullable=False),
        sa.Column("title", sa.String(512), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("visibility", sa.String(16), nullable=False),
        sa.Column("trace", JsonColumn, nullable=False),
        sa.Column("spans", JsonColumn, nullable=False),
        sa.Column("span_count", sa.Integer(), nullable=False),
        sa.Column("redacted_count", sa.Integer(), nullable=False),
        sa.Column("redactions", JsonColumn, nullable=False),
        sa.Column("view_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_tapes_visibility_created", "tapes", ["visibility", "created_at"])
    op.create_index("ix_tapes_user_created", "tapes", ["user_id", "created_at"])


def downgrade() -> None:
    op.drop_table("tapes")
