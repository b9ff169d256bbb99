"""Search and memory: full-text index of spans, indexing queue, vectors, memories.

Revision ID: 0005_search_memory
Revises: 0001_foundation
Create Date: 2026-11-28

Lexical search is FTS5 (SQLite) or a generated tsvector with GIN (PostgreSQL), kept current
by the database itself so a span is findable the moment it is stored. Triggers also queue a
span for embedding whenever its text changes. With the pgvector extension, vector tables get
an `embedding` column with an HNSW index for 384-dimension vectors (all-MiniLM-L6-v2).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005_search_memory"
down_revision: str | Sequence[str] | None = "0001_foundation"
branch_labels: str | Sequence[str] | None = ("search_memory",)
depends_on: str | Sequence[str] | None = None

# Aware UTC timestamps: timestamptz on PostgreSQL, sortable ISO text on SQLite.
_UTC_DATETIME = sa.DateTime(timezone=True).with_variant(sa.String(32), "sqlite")
# JSONB on PostgreSQL, JSON text on SQLite.
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
# SQLite only auto-increments INTEGER PRIMARY KEY.
_BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

HNSW_DIM = 384

# The indexed columns, and the first 8000 characters of the long ones.
_FTS_COLUMNS = "name, span_type, model, error, input, output"
_NEW = (
    "new.name, new.span_type, new.model, substr(new.error, 1, 8000), substr(new.input, 1, 8000), "
    "substr(new.output, 1, 8000)"
)
_OLD = (
    "old.name, old.span_type, old.model, substr(old.error, 1, 8000), substr(old.input, 1, 8000), "
    "substr(old.output, 1, 8000)"
)
_EXISTING = (
    "spans.name, spans.span_type, spans.model, substr(spans.error, 1, 8000), "
    "substr(spans.input, 1, 8000), substr(spans.output, 1, 8000)"
)
_TEXT_CHANGED = (
    "old.name IS NOT new.name OR old.span_type IS NOT new.span_type OR old.model IS NOT new.model "
    "OR old.error IS NOT new.error OR old.input IS NOT new.input OR old.output IS NOT new.output"
)
_PG_TEXT_CHANGED = (
    "OLD.name IS DISTINCT FROM NEW.name OR OLD.span_type IS DISTINCT FROM NEW.span_type "
    "OR OLD.model IS DISTINCT FROM NEW.model OR OLD.error IS DISTINCT FROM NEW.error "
    "OR OLD.input IS DISTINCT FROM NEW.input OR OLD.output IS DISTINCT FROM NEW.output"
)
_ENQUEUE = (
    "INSERT INTO span_index_queue (span_pk, seq) VALUES ({row}.pk, 1) "
    "ON CONFLICT (span_pk) DO UPDATE SET seq = span_index_queue.seq + 1, claimed_until = NULL"
)

SQLITE_DDL = [
    f"CREATE VIRTUAL TABLE spans_fts USING fts5({_FTS_COLUMNS}, content='spans', content_rowid='pk', "
    # Column-level detail: no term positions to write, since queries never match phrases.
    "tokenize='porter unicode61', detail=column)",
    f"""CREATE TRIGGER spans_search_insert AFTER INSERT ON spans BEGIN
        INSERT INTO spans_fts (rowid, {_FTS_COLUMNS}) VALUES (new.pk, {_NEW});
        {_ENQUEUE.format(row="new")};
    END""",
    f"""CREATE TRIGGER spans_search_update AFTER UPDATE ON spans WHEN {_TEXT_CHANGED} BEGIN
        INSERT INTO spans_fts (spans_fts, rowid, {_FTS_COLUMNS}) VALUES ('delete', old.pk, {_OLD});
        INSERT INTO spans_fts (rowid, {_FTS_COLUMNS}) VALUES (new.pk, {_NEW});
        {_ENQUEUE.format(row="new")};
    END""",
    f"""CREATE TRIGGER spans_search_delete AFTER DELETE ON spans BEGIN
        INSERT INTO spans_fts (spans_fts, rowid, {_FTS_COLUMNS}) VALUES ('delete', old.pk, {_OLD});
        DELETE FROM span_index_queue WHERE span_pk = old.pk;
    END""",
]

_PG_DOCUMENT = (
    "setweight(to_tsvector('english', "
    "coalesce(name, '') || ' ' || span_type || ' ' || coalesce(model, '')), 'A')"
    " || setweight(to_tsvector('english', coalesce(error, '')), 'A')"
    " || setweight(to_tsvector('english', left(coalesce(input::text, ''), 100000)), 'B')"
    " || setweight(to_tsvector('english', left(coalesce(output::text, ''), 100000)), 'B')"
)

POSTGRES_DDL = [
    f"ALTER TABLE spans ADD COLUMN search_document tsvector GENERATED ALWAYS AS ({_PG_DOCUMENT}) STORED",
    "CREATE INDEX ix_spans_search_document ON spans USING gin (search_document)",
    f"""CREATE FUNCTION retrace_enqueue_span() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        {_ENQUEUE.format(row="NEW")};
        RETURN NULL;
    END $$""",
    "CREATE TRIGGER spans_index_insert AFTER INSERT ON spans FOR EACH ROW "
    "EXECUTE FUNCTION retrace_enqueue_span()",
    f"CREATE TRIGGER spans_index_update AFTER UPDATE ON spans FOR EACH ROW WHEN ({_PG_TEXT_CHANGED}) "
    "EXECUTE FUNCTION retrace_enqueue_span()",
    """CREATE FUNCTION retrace_dequeue_span() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM span_index_queue WHERE span_pk = OLD.pk;
        RETURN NULL;
    END $$""",
    "CREATE TRIGGER spans_index_delete AFTER DELETE ON spans FOR EACH ROW "
    "EXECUTE FUNCTION retrace_dequeue_span()",
]


def _create_pgvector_columns() -> None:
    bind = op.get_bind()
    available = bind.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")).first()
    if available is None:
        return
    # Creating an extension may need privileges the deployment lacks; search then stays exact.
    savepoint = bind.begin_nested()
    try:
        bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS vector"))
    except sa.exc.DBAPIError:
        savepoint.rollback()
        return
    savepoint.commit()
    for table in ("span_vectors", "memory_vectors"):
        op.execute(f"ALTER TABLE {table} ADD COLUMN embedding vector")
        op.execute(
            f"CREATE INDEX ix_{table}_hnsw ON {table} "
            f"USING hnsw ((embedding::vector({HNSW_DIM})) vector_cosine_ops) "
            f"WHERE vector_dims(embedding) = {HNSW_DIM}"
        )


def upgrade() -> None:
    op.create_table(
        "embedding_cache",
        sa.Column("content_hash", sa.String(64), primary_key=True),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", _UTC_DATETIME, nullable=False),
    )
    op.create_table(
        "span_index_queue",
        sa.Column("span_pk", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("seq", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("claimed_until", _UTC_DATETIME, nullable=True),
    )
    op.create_table(
        "span_vectors",
        sa.Column("id", _BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column(
            "span_pk",
            sa.BigInteger(),
            sa.ForeignKey("spans.pk", ondelete="CASCADE"),
            nullable=False,
            unique=True,
        ),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("trace_id", sa.String(128), nullable=False),
        sa.Column("span_type", sa.String(32), nullable=False),
        sa.Column("started_at", _UTC_DATETIME, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_span_vectors_user_id", "span_vectors", ["user_id", "id"])
    op.create_table(
        "memories",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(128), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("scope", sa.String(256), nullable=False),
        sa.Column("category", sa.String(64), nullable=True),
        sa.Column("key", sa.String(256), nullable=True),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("metadata", _JSON, nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("source_trace_id", sa.String(128), nullable=True),
        sa.Column("source_span_id", sa.String(128), nullable=True),
        sa.Column("created_at", _UTC_DATETIME, nullable=False),
        sa.Column("updated_at", _UTC_DATETIME, nullable=False),
        sa.UniqueConstraint("user_id", "scope", "key", name="uq_memories_user_scope_key"),
        sa.UniqueConstraint("user_id", "scope", "content_hash", name="uq_memories_user_scope_content"),
    )
    op.create_index("ix_memories_user_created", "memories", ["user_id", "created_at"])
    op.create_table(
        "memory_vectors",
        sa.Column("id", _BIGINT_PK, primary_key=True, autoincrement=True),
        sa.Column(
            "memory_id",
            sa.String(36),
            sa.ForeignKey("memories.id", ondelete="CASCADE"),
            nullable=False,
            unique=True,
        ),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("scope", sa.String(256), nullable=False),
        sa.Column("category", sa.String(64), nullable=True),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_memory_vectors_user_id", "memory_vectors", ["user_id", "id"])

    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for statement in SQLITE_DDL:
            op.execute(statement)
        # Spans stored before this migration: index them lexically and queue them for embedding.
        op.execute(f"INSERT INTO spans_fts (rowid, {_FTS_COLUMNS}) SELECT pk, {_EXISTING} FROM spans")
    elif dialect == "postgresql":
        for statement in POSTGRES_DDL:
            op.execute(statement)
        _create_pgvector_columns()
    op.execute("INSERT INTO span_index_queue (span_pk, seq) SELECT pk, 1 FROM spans")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for trigger in ("spans_search_insert", "spans_search_update", "spans_search_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS spans_fts")
    elif dialect == "postgresql":
        for trigger in ("spans_index_insert", "spans_index_update", "spans_index_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON spans")
        op.execute("DROP FUNCTION IF EXISTS retrace_enqueue_span()")
        op.execute("DROP FUNCTION IF EXISTS retrace_dequeue_span()")
        op.execute("ALTER TABLE spans DROP COLUMN IF EXISTS search_document")
    for table in ("memory_vectors", "memories", "span_vectors", "span_index_queue", "embedding_cache"):
        op.drop_table(table)
