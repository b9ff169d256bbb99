"""Skills: versioned agent procedures, their tags and their full version history.

Revision ID: 0004_skills
Revises: 0001_foundation
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004_skills"
down_revision: str | Sequence[str] | None = "0001_foundation"
branch_labels: str | Sequence[str] | None = ("skills",)
depends_on: str | Sequence[str] | None = None

# Aware UTC timestamps: timestamptz on PostgreSQL, sortable ISO text on SQLite.
_UTC_DATETIME = sa.DateTime(timezone=True).with_variant(sa.String(32), "sqlite")
# JSONB on PostgreSQL, JSON text on SQLite.
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
# SQLite only auto-increments INTEGER PRIMARY KEY.
_BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "skills",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(128), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("prompt_template", sa.Text(), nullable=False),
        sa.Column("tools", _JSON, nullable=False),
        sa.Column("max_iterations", sa.Integer(), nullable=False),
        sa.Column("error_handling", sa.String(16), nullable=False),
        sa.Column("memory_scope", sa.String(256), nullable=True),
        sa.Column("scope", sa.String(256), nullable=True),
        sa.Column("tags", _JSON, nullable=False),
        sa.Column("is_public", sa.Boolean(), nullable=False),
        sa.Column("metadata", _JSON, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", _UTC_DATETIME, nullable=False),
        sa.Column("updated_at", _UTC_DATETIME, nullable=False),
        sa.UniqueConstraint("user_id", "name", name="uq_skills_user_name"),
    )
    op.create_index("ix_skills_user_created", "skills", ["user_id", "created_at"])
    op.create_index("ix_skills_user_scope", "skills", ["user_id", "scope"])
    op.create_table(
        "skill_tags",
        sa.Column(
            "skill_id", sa.String(36), sa.ForeignKey("skills.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("tag", sa.String(64), primary_key=True),
    )
    op.create_index("ix_skill_tags_tag", "skill_tags", ["tag", "skill_id"])
    op.create_table(
        "skill_versions",
        sa.Column("pk", _BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column("skill_id", sa.String(36), sa.ForeignKey("skills.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content", _JSON, nullable=False),
        sa.Column("changed_fields", _JSON, nullable=False),
        sa.Column("created_at", _UTC_DATETIME, nullable=False),
        sa.UniqueConstraint("skill_id", "version", name="uq_skill_versions_skill_version"),
    )


def downgrade() -> None:
    op.drop_table("skill_versions")
    op.drop_table("skill_tags")
    op.drop_table("skills")
