"""Guardrails: policies, the usage they count, holds, breaches, and monthly plan quotas.

Revision ID: 0012_enforcement
Revises: 0011_ids_per_user
Create Date: 2026-12-02

Counters are keyed by user and run (a trace id), without foreign keys: they are written on the
agent's hot path, and a trigger forgets a trace's counters and breaches when the trace is deleted.
It follows 0011, which rebuilds `traces` on SQLite (and so drops the triggers on it).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012_enforcement"
down_revision: str | Sequence[str] | None = "0011_ids_per_user"
branch_labels: str | Sequence[str] | None = ("enforcement",)
depends_on: str | Sequence[str] | None = None

# The shapes of the shared column types at the time of writing (timestamptz, or sortable ISO text
# on SQLite; JSONB, or JSON text on SQLite).
TIMESTAMP = sa.DateTime(timezone=True).with_variant(sa.String(32), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _user_fk() -> sa.ForeignKey:
    return sa.ForeignKey("users.id", ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "enforcement_policies",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(128), _user_fk(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("project_id", sa.String(256), nullable=True),
        sa.Column("trace_name", sa.String(512), nullable=True),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
    )
    op.create_index("ix_enforcement_policies_user_created", "enforcement_policies", ["user_id", "created_at"])
    op.create_table(
        "enforcement_policy_sets",
        sa.Column("user_id", sa.String(128), _user_fk(), primary_key=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Integer(), nullable=False),
    )
    op.create_table(
        "enforcement_runs",
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("run_id", sa.String(128), primary_key=True),
        sa.Column("steps", sa.BigInteger(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("usd", sa.Float(), nullable=False),
        sa.Column("scopes", JSON, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
    )
    op.create_index("ix_enforcement_runs_updated", "enforcement_runs", ["updated_at"])
    op.create_table(
        "enforcement_run_spans",
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("run_id", sa.String(128), primary_key=True),
        sa.Column("span_id", sa.String(128), primary_key=True),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("usd", sa.Float(), nullable=False),
    )
    op.create_table(
        "enforcement_tool_counts",
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("run_id", sa.String(128), primary_key=True),
        sa.Column("tool_key", sa.String(600), primary_key=True),
        sa.Column("count", sa.Integer(), nullable=False),
    )
    op.create_table(
        "enforcement_period_usage",
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("scope", sa.String(800), primary_key=True),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("usd", sa.Float(), nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
    )
    op.create_index("ix_enforcement_period_usage_updated", "enforcement_period_usage", ["updated_at"])
    op.create_table(
        "enforcement_holds",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(128), _user_fk(), nullable=False),
        sa.Column("policy_id", sa.String(36), nullable=False),
        sa.Column("policy_name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("trace_id", sa.String(128), nullable=True),
        sa.Column("span_id", sa.String(128), nullable=True),
        sa.Column("tool_name", sa.String(512), nullable=True),
        sa.Column("tool_args_hash", sa.String(128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("on_timeout", sa.String(8), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.Column("decided_at", TIMESTAMP, nullable=True),
    )
    op.create_index(
        "ix_enforcement_holds_user_status_created", "enforcement_holds", ["user_id", "status", "created_at"]
    )
    op.create_index("ix_enforcement_holds_user_run", "enforcement_holds", ["user_id", "run_id", "policy_id"])
    op.create_table(
        "enforcement_breaches",
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("trace_id", sa.String(128), primary_key=True),
        sa.Column("policy_id", sa.String(36), primary_key=True),
        sa.Column("policy_name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
    )
    op.create_table(
        "quota_usage",
        sa.Column("user_id", sa.String(128), _user_fk(), primary_key=True),
        sa.Column("month", sa.String(7), primary_key=True),
        sa.Column("traces", sa.Integer(), nullable=False),
    )
    op.create_table(
        "quota_admissions",
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("trace_id", sa.String(128), primary_key=True),
        sa.Column("month", sa.String(7), nullable=False),
    )
    op.create_index("ix_quota_admissions_user_month", "quota_admissions", ["user_id", "month"])
    statements = SQLITE_FORGET_TRACE if op.get_bind().dialect.name == "sqlite" else POSTGRES_FORGET_TRACE
    for statement in statements:
        op.execute(statement)


_FORGET = (
    "DELETE FROM enforcement_breaches WHERE user_id = {row}.user_id AND trace_id = {row}.id",
    "DELETE FROM enforcement_runs WHERE user_id = {row}.user_id AND run_id = {row}.id",
    "DELETE FROM enforcement_run_spans WHERE user_id = {row}.user_id AND run_id = {row}.id",
    "DELETE FROM enforcement_tool_counts WHERE user_id = {row}.user_id AND run_id = {row}.id",
)
SQLITE_FORGET_TRACE = [
    "CREATE TRIGGER traces_forget_enforcement AFTER DELETE ON traces BEGIN "
    + "; ".join(s.format(row="old") for s in _FORGET)
    + "; END",
]
POSTGRES_FORGET_TRACE = [
    "CREATE FUNCTION retrace_forget_enforcement() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    + "; ".join(s.format(row="OLD") for s in _FORGET)
    + "; RETURN NULL; END $$",
    "CREATE TRIGGER traces_forget_enforcement AFTER DELETE ON traces FOR EACH ROW "
    "EXECUTE FUNCTION retrace_forget_enforcement()",
]


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS traces_forget_enforcement")
    else:
        op.execute("DROP TRIGGER IF EXISTS traces_forget_enforcement ON traces")
        op.execute("DROP FUNCTION IF EXISTS retrace_forget_enforcement()")
    for table in (
        "quota_admissions",
        "quota_usage",
        "enforcement_breaches",
        "enforcement_holds",
        "enforcement_period_usage",
        "enforcement_tool_counts",
        "enforcement_run_spans",
        "enforcement_runs",
        "enforcement_policy_sets",
        "enforcement_policies",
    ):
        op.drop_table(table)
