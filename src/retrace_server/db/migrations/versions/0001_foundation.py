"""Foundation: users, api keys, traces, spans.

Revision ID: 0001_foundation
Revises:
Create Date: 2026-11-28

Later domains branch from this revision (one Alembic branch per domain); `upgrade heads`
applies them all.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from retrace_server.db.types import BigIntPk, JsonColumn, UtcDateTime

revision: str = "0001_foundation"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("foundation",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("tier", sa.String(16), nullable=False, server_default="free"),
        sa.Column("created_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(128), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("last_used_at", UtcDateTime(), nullable=True),
        sa.Column("revoked_at", UtcDateTime(), nullable=True),
    )
    op.create_index("ix_api_keys_user_id", "api_keys", ["user_id"])
    op.create_table(
        "traces",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("user_id", sa.String(128), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(512), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("input", JsonColumn, nullable=True),
        sa.Column("output", JsonColumn, nullable=True),
        sa.Column("metadata", JsonColumn, nullable=False),
        sa.Column("session_id", sa.String(256), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("lossy", sa.Boolean(), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("ended_at", UtcDateTime(), nullable=True),
        sa.Column("last_activity_at", UtcDateTime(), nullable=True),
        sa.Column("total_tokens", sa.Integer(), nullable=False),
        sa.Column("total_cost", sa.Float(), nullable=False),
        sa.Column("total_duration_ms", sa.Integer(), nullable=False),
        sa.Column("span_count", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_traces_user_started", "traces", ["user_id", "started_at"])
    op.create_index("ix_traces_user_status_started", "traces", ["user_id", "status", "started_at"])
    op.create_index("ix_traces_user_session_started", "traces", ["user_id", "session_id", "started_at"])
    op.create_table(
        "spans",
        sa.Column("pk", BigIntPk, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("trace_id", sa.String(128), sa.ForeignKey("traces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("parent_id", sa.String(128), nullable=True),
        sa.Column("span_type", sa.String(32), nullable=False),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("model", sa.String(256), nullable=True),
        sa.Column("input", JsonColumn, nullable=True),
        sa.Column("output", JsonColumn, nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=True),
        sa.Column("output_tokens", sa.Integer(), nullable=True),
        sa.Column("cost", sa.Float(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("metadata", JsonColumn, nullable=False),
        sa.Column("agent_id", sa.String(256), nullable=True),
        sa.Column("parent_agent_id", sa.String(256), nullable=True),
        sa.Column("agent_role", sa.String(256), nullable=True),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("ended_at", UtcDateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.UniqueConstraint("trace_id", "id", name="uq_spans_trace_id_id"),
    )
    op.create_index("ix_spans_trace_started", "spans", ["trace_id", "started_at"])
    op.create_index("ix_spans_user_started", "spans", ["user_id", "started_at"])


def downgrade() -> None:
    op.drop_table("spans")
    op.drop_table("traces")
    op.drop_table("api_keys")
    op.drop_table("users")
