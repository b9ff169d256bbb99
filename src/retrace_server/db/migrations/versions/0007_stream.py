"""Live stream: connected agents, the functions they can re-run, and commands for them.

Revision ID: 0007_stream
Revises: 0001_foundation
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from retrace_server.db.types import BigIntPk, JsonColumn, UtcDateTime

revision: str = "0007_stream"
down_revision: str | Sequence[str] | None = "0001_foundation"
branch_labels: str | Sequence[str] | None = ("stream",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stream_agents",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(128), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("replay_generation", sa.Integer(), nullable=False),
        sa.Column("connected_at", UtcDateTime(), nullable=False),
        sa.Column("heartbeat_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_stream_agents_user_heartbeat", "stream_agents", ["user_id", "heartbeat_at"])
    op.create_table(
        "stream_agent_functions",
        sa.Column(
            "agent_id",
            sa.String(36),
            sa.ForeignKey("stream_agents.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("trace_name", sa.String(512), primary_key=True),
        sa.Column("user_id", sa.String(128), nullable=False),
    )
    op.create_index(
        "ix_stream_agent_functions_user_name", "stream_agent_functions", ["user_id", "trace_name"]
    )
    op.create_table(
        "stream_commands",
        sa.Column("id", BigIntPk, primary_key=True, autoincrement=True),
        sa.Column(
            "agent_id", sa.String(36), sa.ForeignKey("stream_agents.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("frame", JsonColumn, nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_stream_commands_agent_id", "stream_commands", ["agent_id"])


def downgrade() -> None:
    op.drop_table("stream_commands")
    op.drop_table("stream_agent_functions")
    op.drop_table("stream_agents")
