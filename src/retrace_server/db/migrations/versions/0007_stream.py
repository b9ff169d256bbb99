"""Live stream: connected agents, the functions they can re-run, and commands for them.

Revision ID: 0007_stream
Revises: 0001_foundation
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007_stream"
down_revision: str | Sequence[str] | None = "0001_foundation"
branch_labels: str | Sequence[str] | None = ("stream",)
depends_on: str | Sequence[str] | None = None

# Aware UTC timestamps: timestamptz on PostgreSQL, sortable ISO text on SQLite.
_UTC_DATETIME = sa.DateTime(timezone=True).with_variant(sa.String(32), "sqlite")
# JSONB on PostgreSQL, JSON text on SQLite.
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
# SQLite only auto-increments INTEGER PRIMARY KEY.
_BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "stream_agents",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(128), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("replay_generation", sa.Integer(), nullable=False),
        sa.Column("connected_at", _UTC_DATETIME, nullable=False),
        sa.Column("heartbeat_at", _UTC_DATETIME, nullable=False),
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
        sa.Column("id", _BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column(
            "agent_id", sa.String(36), sa.ForeignKey("stream_agents.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("frame", _JSON, nullable=False),
        sa.Column("created_at", _UTC_DATETIME, nullable=False),
    )
    op.create_index("ix_stream_commands_agent_id", "stream_commands", ["agent_id"])


def downgrade() -> None:
    op.drop_table("stream_commands")
    op.drop_table("stream_agent_functions")
    op.drop_table("stream_agents")
