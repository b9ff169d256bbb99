"""Trace and span ids are unique per user; traces gain `project_id`, spans `cost_source`.

Revision ID: 0011_ids_per_user
Revises: 0006_forks, 0009_spans_by_trace, 0010_search_index_file
Create Date: 2026-12-01

A client-chosen trace id was global: one tenant's id blocked another's and told it the id
existed. Traces are now keyed by (user_id, id); spans and forks reference them by both.
SQLite cannot change a primary key in place, so its tables are rebuilt (the documented
create-copy-drop-rename procedure, with foreign keys off for the migration: see `db.migrate`)
keeping every span's row id, which the full-text and vector indexes point at. Triggers on the
rebuilt tables are created again from the SQL frozen here.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011_ids_per_user"
down_revision: str | Sequence[str] | None = ("0006_forks", "0009_spans_by_trace", "0010_search_index_file")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TRACE_COLUMNS = """
    id VARCHAR(128) NOT NULL,
    user_id VARCHAR(128) NOT NULL,
    name VARCHAR(512),
    status VARCHAR(16) NOT NULL,
    input JSON,
    output JSON,
    metadata JSON NOT NULL,
    session_id VARCHAR(256),
    error TEXT,
    lossy BOOLEAN NOT NULL,
    started_at VARCHAR(32) NOT NULL,
    ended_at VARCHAR(32),
    last_activity_at VARCHAR(32),
    total_tokens BIGINT NOT NULL,
    total_cost FLOAT NOT NULL,
    total_duration_ms BIGINT NOT NULL,
    span_count INTEGER NOT NULL,
    created_at VARCHAR(32) NOT NULL,
    updated_at VARCHAR(32) NOT NULL"""
_TRACE_COPIED = (
    "id, user_id, name, status, input, output, metadata, session_id, error, lossy, started_at, ended_at, "
    "last_activity_at, total_tokens, total_cost, total_duration_ms, span_count, created_at, updated_at"
)
_SPAN_COLUMNS = """
    pk INTEGER NOT NULL,
    id VARCHAR(128) NOT NULL,
    trace_id VARCHAR(128) NOT NULL,
    user_id VARCHAR(128) NOT NULL,
    parent_id VARCHAR(128),
    span_type VARCHAR(32) NOT NULL,
    name VARCHAR(512) NOT NULL,
    model VARCHAR(256),
    input JSON,
    output JSON,
    input_tokens INTEGER,
    output_tokens INTEGER,
    cost FLOAT,
    duration_ms BIGINT,
    metadata JSON NOT NULL,
    agent_id VARCHAR(256),
    parent_agent_id VARCHAR(256),
    agent_role VARCHAR(256),
    started_at VARCHAR(32) NOT NULL,
    ended_at VARCHAR(32),
    error TEXT"""
_SPAN_COPIED = (
    "pk, id, trace_id, user_id, parent_id, span_type, name, model, input, output, input_tokens, "
    "output_tokens, cost, duration_ms, metadata, agent_id, parent_agent_id, agent_role, started_at, "
    "ended_at, error"
)
_FORK_COLUMNS = """
    id VARCHAR(36) NOT NULL,
    user_id VARCHAR(128) NOT NULL,
    trace_id VARCHAR(128) NOT NULL,
    fork_point_span_id VARCHAR(128) NOT NULL,
    name VARCHAR(512),
    status VARCHAR(16) NOT NULL,
    modified_input JSON,
    model VARCHAR(256),
    parameters JSON NOT NULL,
    result_trace_id VARCHAR(128),
    execution_id VARCHAR(36),
    error TEXT,
    heartbeat_at VARCHAR(32),
    created_at VARCHAR(32) NOT NULL,
    updated_at VARCHAR(32) NOT NULL"""
_FORK_COPIED = (
    "id, user_id, trace_id, fork_point_span_id, name, status, modified_input, model, parameters, "
    "result_trace_id, execution_id, error, heartbeat_at, created_at, updated_at"
)

_TRACE_INDEXES = [
    "CREATE INDEX ix_traces_user_started ON traces (user_id, started_at, id)",
    "CREATE INDEX ix_traces_user_status_started ON traces (user_id, status, started_at, id)",
    "CREATE INDEX ix_traces_user_session_started ON traces (user_id, session_id, started_at, id)",
    "CREATE INDEX ix_traces_user_name_started ON traces (user_id, name, started_at, id)",
]
_FORK_INDEXES = [
    "CREATE INDEX ix_forks_user_created ON forks (user_id, created_at)",
    "CREATE INDEX ix_forks_user_trace_created ON forks (user_id, trace_id, created_at)",
    "CREATE INDEX ix_forks_status_heartbeat ON forks (status, heartbeat_at)",
]
_COUNT = (
    "INSERT INTO trace_counts (user_id, status, count) VALUES ({row}.user_id, {row}.status, {delta}) "
    "ON CONFLICT (user_id, status) DO UPDATE SET count = trace_counts.count + ({delta})"
)
_NAME = (
    "INSERT INTO trace_names (user_id, name) VALUES (new.user_id, new.name) "
    "ON CONFLICT (user_id, name) DO NOTHING"
)
_SQLITE_TRACE_TRIGGERS = [
    "CREATE TRIGGER traces_count_insert AFTER INSERT ON traces BEGIN "
    f"{_COUNT.format(row='new', delta=1)}; END",
    "CREATE TRIGGER traces_count_delete AFTER DELETE ON traces BEGIN "
    f"{_COUNT.format(row='old', delta=-1)}; END",
    "CREATE TRIGGER traces_count_update AFTER UPDATE OF status, user_id ON traces "
    "WHEN old.status IS NOT new.status OR old.user_id IS NOT new.user_id BEGIN "
    f"{_COUNT.format(row='old', delta=-1)}; {_COUNT.format(row='new', delta=1)}; END",
    f"CREATE TRIGGER traces_name_insert AFTER INSERT ON traces WHEN new.name IS NOT NULL BEGIN {_NAME}; END",
    "CREATE TRIGGER traces_name_update AFTER UPDATE OF name ON traces WHEN new.name IS NOT NULL "
    f"BEGIN {_NAME}; END",
]
_ENQUEUE = (
    "INSERT INTO span_index_queue (span_pk, seq) VALUES (new.pk, 1) "
    "ON CONFLICT (span_pk) DO UPDATE SET seq = span_index_queue.seq + 1, claimed_until = NULL"
)
_RECORD_OLD_TEXT = (
    "INSERT INTO spans_fts_changes (span_pk, name, span_type, model, error, input, output) "
    "VALUES (old.pk, old.name, old.span_type, old.model, substr(old.error, 1, 8000), "
    "substr(old.input, 1, 8000), substr(old.output, 1, 8000))"
)
_TEXT_CHANGED = (
    "old.name IS NOT new.name OR old.span_type IS NOT new.span_type OR old.model IS NOT new.model "
    "OR old.error IS NOT new.error OR old.input IS NOT new.input OR old.output IS NOT new.output"
)
_SQLITE_SPAN_TRIGGERS = [
    f"CREATE TRIGGER spans_search_insert AFTER INSERT ON spans BEGIN {_ENQUEUE}; END",
    f"CREATE TRIGGER spans_search_update AFTER UPDATE ON spans WHEN {_TEXT_CHANGED} BEGIN "
    f"{_RECORD_OLD_TEXT}; {_ENQUEUE}; END",
    "CREATE TRIGGER spans_search_delete AFTER DELETE ON spans BEGIN "
    f"{_RECORD_OLD_TEXT}; DELETE FROM span_index_queue WHERE span_pk = old.pk; END",
]


def _rebuild(table: str, create: str, copied: str, extra: list[str]) -> None:
    """SQLite's way to change a table's keys: a new table, the rows copied, the old one dropped."""
    op.execute(create.replace(f"CREATE TABLE {table} ", f"CREATE TABLE {table}_rebuilt ", 1))
    op.execute(f"INSERT INTO {table}_rebuilt ({copied}) SELECT {copied} FROM {table}")
    op.execute(f"DROP TABLE {table}")
    op.execute(f"ALTER TABLE {table}_rebuilt RENAME TO {table}")
    for statement in extra:
        op.execute(statement)


def _sqlite_upgrade() -> None:
    _rebuild(
        "traces",
        f"CREATE TABLE traces ({_TRACE_COLUMNS}, project_id VARCHAR(256), PRIMARY KEY (user_id, id), "
        "FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE)",
        _TRACE_COPIED,
        [
            *_TRACE_INDEXES,
            "CREATE INDEX ix_traces_user_project_started ON traces (user_id, project_id, started_at, id)",
            *_SQLITE_TRACE_TRIGGERS,
        ],
    )
    _rebuild(
        "spans",
        f"CREATE TABLE spans ({_SPAN_COLUMNS}, cost_source VARCHAR(16), PRIMARY KEY (pk), "
        "CONSTRAINT uq_spans_user_trace_id UNIQUE (user_id, trace_id, id), "
        "CONSTRAINT fk_spans_trace FOREIGN KEY(user_id, trace_id) REFERENCES traces (user_id, id) "
        "ON DELETE CASCADE)",
        _SPAN_COPIED,
        [
            "CREATE INDEX ix_spans_trace_started ON spans (user_id, trace_id, started_at)",
            *_SQLITE_SPAN_TRIGGERS,
        ],
    )
    _rebuild(
        "forks",
        f"CREATE TABLE forks ({_FORK_COLUMNS}, PRIMARY KEY (id), "
        "FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE, "
        "CONSTRAINT fk_forks_trace FOREIGN KEY(user_id, trace_id) REFERENCES traces (user_id, id) "
        "ON DELETE CASCADE)",
        _FORK_COPIED,
        _FORK_INDEXES,
    )


def _sqlite_downgrade() -> None:
    _rebuild(
        "traces",
        f"CREATE TABLE traces ({_TRACE_COLUMNS}, PRIMARY KEY (id), "
        "FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE)",
        _TRACE_COPIED,
        [*_TRACE_INDEXES, *_SQLITE_TRACE_TRIGGERS],
    )
    _rebuild(
        "spans",
        f"CREATE TABLE spans ({_SPAN_COLUMNS}, PRIMARY KEY (pk), CONSTRAINT uq_spans_trace_id_id UNIQUE "
        "(trace_id, id), FOREIGN KEY(trace_id) REFERENCES traces (id) ON DELETE CASCADE)",
        _SPAN_COPIED,
        ["CREATE INDEX ix_spans_trace_started ON spans (trace_id, started_at)", *_SQLITE_SPAN_TRIGGERS],
    )
    _rebuild(
        "forks",
        f"CREATE TABLE forks ({_FORK_COLUMNS}, PRIMARY KEY (id), "
        "FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE, "
        "FOREIGN KEY(trace_id) REFERENCES traces (id) ON DELETE CASCADE)",
        _FORK_COPIED,
        _FORK_INDEXES,
    )


_POSTGRES_UPGRADE = [
    "ALTER TABLE spans DROP CONSTRAINT spans_trace_id_fkey",
    "ALTER TABLE forks DROP CONSTRAINT forks_trace_id_fkey",
    "ALTER TABLE traces DROP CONSTRAINT traces_pkey, ADD CONSTRAINT traces_pkey PRIMARY KEY (user_id, id)",
    "ALTER TABLE traces ADD COLUMN project_id VARCHAR(256)",
    "CREATE INDEX ix_traces_user_project_started ON traces (user_id, project_id, started_at, id)",
    "ALTER TABLE spans DROP CONSTRAINT uq_spans_trace_id_id, "
    "ADD CONSTRAINT uq_spans_user_trace_id UNIQUE (user_id, trace_id, id), "
    "ADD CONSTRAINT fk_spans_trace FOREIGN KEY (user_id, trace_id) REFERENCES traces (user_id, id) "
    "ON DELETE CASCADE, ADD COLUMN cost_source VARCHAR(16)",
    "DROP INDEX ix_spans_trace_started",
    "CREATE INDEX ix_spans_trace_started ON spans (user_id, trace_id, started_at)",
    "ALTER TABLE forks ADD CONSTRAINT fk_forks_trace FOREIGN KEY (user_id, trace_id) "
    "REFERENCES traces (user_id, id) ON DELETE CASCADE",
]
_POSTGRES_DOWNGRADE = [
    "ALTER TABLE forks DROP CONSTRAINT fk_forks_trace",
    "ALTER TABLE spans DROP CONSTRAINT fk_spans_trace, DROP CONSTRAINT uq_spans_user_trace_id, "
    "DROP COLUMN cost_source, ADD CONSTRAINT uq_spans_trace_id_id UNIQUE (trace_id, id)",
    "DROP INDEX ix_spans_trace_started",
    "CREATE INDEX ix_spans_trace_started ON spans (trace_id, started_at)",
    "DROP INDEX ix_traces_user_project_started",
    "ALTER TABLE traces DROP COLUMN project_id",
    "ALTER TABLE traces DROP CONSTRAINT traces_pkey, ADD CONSTRAINT traces_pkey PRIMARY KEY (id)",
    "ALTER TABLE spans ADD CONSTRAINT spans_trace_id_fkey FOREIGN KEY (trace_id) REFERENCES traces (id) "
    "ON DELETE CASCADE",
    "ALTER TABLE forks ADD CONSTRAINT forks_trace_id_fkey FOREIGN KEY (trace_id) REFERENCES traces (id) "
    "ON DELETE CASCADE",
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_upgrade()
        return
    for statement in _POSTGRES_UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    """Only possible while no two users share a trace id (the old key was the id alone)."""
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_downgrade()
        return
    for statement in _POSTGRES_DOWNGRADE:
        op.execute(statement)
