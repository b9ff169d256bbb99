"""Forks: branches of a trace at one span, and their replays.

Revision ID: 0006_forks
Revises: 0001_foundation
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006_forks"
down_revision: str | Sequence[str] | None = "0001_foundation"
branch_labels: str | Sequence[str] | None = ("forks",)
depends_on: str | Sequence[str] | None = None

# Aware UTC timestamps: timestamptz on PostgreSQL, sortable ISO text on SQLite.
_UTC_DATETIME = sa.DateTime(timezone=True).with_variant(sa.String(32), "sqlite")
# JSONB on PostgreSQL, JSON text on SQLite.
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "forks",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(128), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("trace_id", sa.String(128), sa.ForeignKey("traces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("fork_point_span_id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(512), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("modified_input", _JSON, nullable=True),
        sa.Column("model", sa.String(256), nullable=True),
        sa.Column("parameters", _JSON, nullable=False),
        sa.Column("result_trace_id", sa.String(128), nullable=True),
        sa.Column("execution_id", sa.String(36), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("heartbeat_at", _UTC_DATETIME, nullable=True),
        sa.Column("created_at", _UTC_DATETIME, nullable=False),
        sa.Column("updated_at", _UTC_DATETIME, nullable=False),
    )
    op.create_index("ix_forks_user_created", "forks", ["user_id", "created_at"])
    op.create_index("ix_forks_user_trace_created", "forks", ["user_id", "trace_id", "created_at"])
    op.create_index("ix_forks_status_heartbeat", "forks", ["status", "heartbeat_at"])
    op.create_table(
        "fork_runs",
        sa.Column("execution_id", sa.String(36), primary_key=True),
        sa.Column("fork_id", sa.String(36), sa.ForeignKey("forks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("modified_input", _JSON, nullable=True),
        sa.Column("model", sa.String(256), nullable=True),
        sa.Column("parameters", _JSON, nullable=False),
        sa.Column("result_trace_id", sa.String(128), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("failed_step", _JSON, nullable=True),
        sa.Column("claimed_at", _UTC_DATETIME, nullable=True),
        sa.Column("started_at", _UTC_DATETIME, nullable=False),
        sa.Column("ended_at", _UTC_DATETIME, nullable=True),
    )
    op.create_index("ix_fork_runs_fork_started", "fork_runs", ["fork_id", "started_at"])


def downgrade() -> None:
    op.drop_table("fork_runs")
    op.drop_table("forks")
