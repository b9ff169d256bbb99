"""Tables of the semantic index: embedding cache, indexing queue and span vectors."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, FetchedValue, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from retrace_server.db.base import Base
from retrace_server.db.types import BigIntPk, UtcDateTime, utcnow


class EmbeddingCache(Base):
    """One vector per distinct text and embedder: agent runs repeat prompts and tool outputs."""

    __tablename__ = "embedding_cache"

    content_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class SpanIndexQueue(Base):
    """Spans whose text changed since they were last embedded; filled by database triggers.

    `seq` grows on every change, so a worker only retires the version it embedded; a lease
    (`claimed_until`) lets several workers share the backlog and a crashed one's work return;
    `queued_at` tells how long the backlog has been waiting.
    """

    __tablename__ = "span_index_queue"

    span_pk: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer, default=1)
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # Set by the database when the span is queued (kept if it is queued again before it is embedded).
    queued_at: Mapped[datetime] = mapped_column(UtcDateTime, server_default=FetchedValue())


class SpanVector(Base):
    """The vector of a span, with the fields search filters on. `id` grows with every write,
    so processes holding vectors in memory load only what changed."""

    __tablename__ = "span_vectors"
    __table_args__ = (Index("ix_span_vectors_user_id", "user_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntPk, primary_key=True, autoincrement=True)
    span_pk: Mapped[int] = mapped_column(BigInteger, ForeignKey("spans.pk", ondelete="CASCADE"), unique=True)
    user_id: Mapped[str] = mapped_column(String(128))
    trace_id: Mapped[str] = mapped_column(String(128))
    span_type: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    content_hash: Mapped[str] = mapped_column(String(64))
    vector: Mapped[bytes] = mapped_column(LargeBinary)
