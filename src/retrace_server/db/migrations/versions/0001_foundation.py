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
from sqlalchemy.dialects import postgresql

revision: str = "0001_foundation"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("foundation",)
depends_on: str | Sequence[str] | None = None

# Aware UTC timestamps: timestamptz on PostgreSQL, sortable ISO text on SQLite.
_UTC_DATETIME = sa.DateTime(timezone=True).with_variant(sa.String(32), "sqlite")
# JSONB on PostgreSQL, JSON text on SQLite.
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
# SQLite only auto-increments INTEGER PRIMARY KEY.
_BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("tier", sa.String(16), nullable=False, server_default="free"),
        sa.Column("created_at", _UTC_DATETIME, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(128), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at", _UTC_DATETIME, nullable=False),
        sa.Column("last_used_at", _UTC_DATETIME, nullable=True),
        sa.Column("revoked_at", _UTC_DATETIME, nullable=True),
    )
    op.create_index("ix_api_keys_user_id", "api_keys", ["user_id"])
    op.create_table(
        "traces",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("user_id", sa.String(128), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(512), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("input", _JSON, nullable=True),
        sa.Column("output", _JSON, nullable=True),
        sa.Column("metadata", _JSON, nullable=False),
        sa.Column("session_id", sa.String(256), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("lossy", sa.Boolean(), nullable=False),
        sa.Column("started_at", _UTC_DATETIME, nullable=False),
        sa.Column("ended_at", _UTC_DATETIME, nullable=True),
        sa.Column("last_activity_at", _UTC_DATETIME, nullable=True),
        sa.Column("total_tokens", sa.BigInteger(), nullable=False),
        sa.Column("total_cost", sa.Float(), nullable=False),
        sa.Column("total_duration_ms", sa.BigInteger(), nullable=False),
        sa.Column("span_count", sa.Integer(), nullable=False),
        sa.Column("created_at", _UTC_DATETIME, nullable=False),
        sa.Column("updated_at", _UTC_DATETIME, nullable=False),
    )
    op.create_index("ix_traces_user_started", "traces", ["user_id", "started_at", "id"])
    op.create_index("ix_traces_user_status_started", "traces", ["user_id", "status", "started_at", "id"])
    op.create_index("ix_traces_user_session_started", "traces", ["user_id", "session_id", "started_at", "id"])
    op.create_table(
        "trace_counts",
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("status", sa.String(16), primary_key=True),
        sa.Column("count", sa.Integer(), nullable=False),
    )
    op.create_table(
        "trace_names",
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("name", sa.String(512), primary_key=True),
    )
    op.create_index("ix_traces_user_name_started", "traces", ["user_id", "name", "started_at", "id"])
    _create_trace_counters()
    _create_trace_names()
    op.create_table(
        "spans",
        sa.Column("pk", _BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("trace_id", sa.String(128), sa.ForeignKey("traces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("parent_id", sa.String(128), nullable=True),
        sa.Column("span_type", sa.String(32), nullable=False),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("model", sa.String(256), nullable=True),
        sa.Column("input", _JSON, nullable=True),
        sa.Column("output", _JSON, nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=True),
        sa.Column("output_tokens", sa.Integer(), nullable=True),
        sa.Column("cost", sa.Float(), nullable=True),
        sa.Column("duration_ms", sa.BigInteger(), nullable=True),
        sa.Column("metadata", _JSON, nullable=False),
        sa.Column("agent_id", sa.String(256), nullable=True),
        sa.Column("parent_agent_id", sa.String(256), nullable=True),
        sa.Column("agent_role", sa.String(256), nullable=True),
        sa.Column("started_at", _UTC_DATETIME, nullable=False),
        sa.Column("ended_at", _UTC_DATETIME, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.UniqueConstraint("trace_id", "id", name="uq_spans_trace_id_id"),
    )
    op.create_index("ix_spans_trace_started", "spans", ["trace_id", "started_at"])
    op.create_index("ix_spans_user_started", "spans", ["user_id", "started_at"])


def _create_trace_counters() -> None:
    """Keeps trace_counts right whatever writes traces, so unfiltered list totals cost one read."""
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_TRACE_COUNTERS:
            op.execute(statement)
        return
    for statement in POSTGRES_TRACE_COUNTERS:
        op.execute(statement)


_BUMP = (
    "INSERT INTO trace_counts (user_id, status, count) VALUES ({row}.user_id, {row}.status, {delta}) "
    "ON CONFLICT (user_id, status) DO UPDATE SET count = trace_counts.count + ({delta})"
)
SQLITE_TRACE_COUNTERS = [
    f"""CREATE TRIGGER traces_count_insert AFTER INSERT ON traces BEGIN
        {_BUMP.format(row="new", delta=1)};
    END""",
    f"""CREATE TRIGGER traces_count_delete AFTER DELETE ON traces BEGIN
        {_BUMP.format(row="old", delta=-1)};
    END""",
    f"""CREATE TRIGGER traces_count_update AFTER UPDATE OF status, user_id ON traces
        WHEN old.status IS NOT new.status OR old.user_id IS NOT new.user_id BEGIN
        {_BUMP.format(row="old", delta=-1)};
        {_BUMP.format(row="new", delta=1)};
    END""",
]
POSTGRES_TRACE_COUNTERS = [
    f"""CREATE FUNCTION retrace_count_traces() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP IN ('DELETE', 'UPDATE') THEN {_BUMP.format(row="OLD", delta=-1)}; END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN {_BUMP.format(row="NEW", delta=1)}; END IF;
        RETURN NULL;
    END $$""",
    "CREATE TRIGGER traces_count_insert_delete AFTER INSERT OR DELETE ON traces "
    "FOR EACH ROW EXECUTE FUNCTION retrace_count_traces()",
    "CREATE TRIGGER traces_count_update AFTER UPDATE OF status, user_id ON traces FOR EACH ROW "
    "WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.user_id IS DISTINCT FROM NEW.user_id) "
    "EXECUTE FUNCTION retrace_count_traces()",
]


_NAME_SEEN = (
    "INSERT INTO trace_names (user_id, name) VALUES ({row}.user_id, {row}.name) "
    "ON CONFLICT (user_id, name) DO NOTHING"
)
SQLITE_TRACE_NAMES = [
    f"""CREATE TRIGGER traces_name_insert AFTER INSERT ON traces WHEN new.name IS NOT NULL BEGIN
        {_NAME_SEEN.format(row="new")};
    END""",
    f"""CREATE TRIGGER traces_name_update AFTER UPDATE OF name ON traces WHEN new.name IS NOT NULL BEGIN
        {_NAME_SEEN.format(row="new")};
    END""",
]
POSTGRES_TRACE_NAMES = [
    f"""CREATE FUNCTION retrace_note_trace_name() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.name IS NOT NULL THEN {_NAME_SEEN.format(row="NEW")}; END IF;
        RETURN NULL;
    END $$""",
    "CREATE TRIGGER traces_name_insert AFTER INSERT OR UPDATE OF name ON traces FOR EACH ROW "
    "EXECUTE FUNCTION retrace_note_trace_name()",
]


def _create_trace_names() -> None:
    """Distinct trace names per user: a name filter scans these, then reads matching traces by index."""
    statements = SQLITE_TRACE_NAMES if op.get_bind().dialect.name == "sqlite" else POSTGRES_TRACE_NAMES
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for trigger in ("traces_name_insert", "traces_name_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        for trigger in ("traces_count_insert", "traces_count_delete", "traces_count_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    else:
        op.execute("DROP TRIGGER IF EXISTS traces_name_insert ON traces")
        op.execute("DROP FUNCTION IF EXISTS retrace_note_trace_name()")
        op.execute("DROP TRIGGER IF EXISTS traces_count_insert_delete ON traces")
        op.execute("DROP TRIGGER IF EXISTS traces_count_update ON traces")
        op.execute("DROP FUNCTION IF EXISTS retrace_count_traces()")
    op.drop_table("trace_names")
    op.drop_table("trace_counts")
    op.drop_table("spans")
    op.drop_table("traces")
    op.drop_table("api_keys")
    op.drop_table("users")
