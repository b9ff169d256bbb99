"""Golden baselines and the regression verdicts of runs compared with them.

Revision ID: 0013_baselines
Revises: 0011_ids_per_user
Create Date: 2026-12-02

Both tables sit beside `traces` rather than adding columns to it; a trigger forgets a trace's
golden mark and verdict when the trace is deleted, so a trace id used again starts clean.
It follows 0011, which rebuilds `traces` on SQLite (and so drops the triggers on it).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013_baselines"
down_revision: str | Sequence[str] | None = "0011_ids_per_user"
branch_labels: str | Sequence[str] | None = ("baselines",)
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True).with_variant(sa.String(32), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "golden_baselines",
        sa.Column("user_id", sa.String(128), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("trace_id", sa.String(128), primary_key=True),
        sa.Column("name_key", sa.String(512), nullable=False),
        sa.Column("project_key", sa.String(256), nullable=False),
        sa.Column("marked_at", TIMESTAMP, nullable=False),
    )
    op.create_index(
        "ix_golden_baselines_scope", "golden_baselines", ["user_id", "name_key", "project_key", "marked_at"]
    )
    op.create_table(
        "regression_results",
        sa.Column("user_id", sa.String(128), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("trace_id", sa.String(128), primary_key=True),
        sa.Column("baseline_trace_id", sa.String(128), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("findings", JSON, nullable=False),
        sa.Column("compared_at", TIMESTAMP, nullable=False),
    )
    op.create_index("ix_regression_results_user_verdict", "regression_results", ["user_id", "verdict"])
    statements = SQLITE_FORGET_TRACE if op.get_bind().dialect.name == "sqlite" else POSTGRES_FORGET_TRACE
    for statement in statements:
        op.execute(statement)


_FORGET = (
    "DELETE FROM golden_baselines WHERE user_id = {row}.user_id AND trace_id = {row}.id",
    "DELETE FROM regression_results WHERE user_id = {row}.user_id AND trace_id = {row}.id",
)
SQLITE_FORGET_TRACE = [
    "CREATE TRIGGER traces_forget_baselines AFTER DELETE ON traces BEGIN "
    + "; ".join(s.format(row="old") for s in _FORGET)
    + "; END",
]
POSTGRES_FORGET_TRACE = [
    "CREATE FUNCTION retrace_forget_baselines() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    + "; ".join(s.format(row="OLD") for s in _FORGET)
    + "; RETURN NULL; END $$",
    "CREATE TRIGGER traces_forget_baselines AFTER DELETE ON traces FOR EACH ROW "
    "EXECUTE FUNCTION retrace_forget_baselines()",
]


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS traces_forget_baselines")
    else:
        op.execute("DROP TRIGGER IF EXISTS traces_forget_baselines ON traces")
        op.execute("DROP FUNCTION IF EXISTS retrace_forget_baselines()")
    op.drop_table("regression_results")
    op.drop_table("golden_baselines")
