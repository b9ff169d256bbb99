from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from retrace_server.db.base import Base
from retrace_server.db.types import BigIntPk, JsonColumn, UtcDateTime, utcnow


class Memory(Base):
    __tablename__ = "memories"
    __table_args__ = (
        # NULL keys never collide, so only keyed entries are unique per scope.
        UniqueConstraint("user_id", "scope", "key", name="uq_memories_user_scope_key"),
        UniqueConstraint("user_id", "scope", "content_hash", name="uq_memories_user_scope_content"),
        Index("ix_memories_user_created", "user_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(String(256), default="global")
    category: Mapped[str | None] = mapped_column(String(64), nullable=True)
    key: Mapped[str | None] = mapped_column(String(256), nullable=True)
    content: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JsonColumn, default=dict)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    source_trace_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    source_span_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class MemoryVector(Base):
    """The vector of a memory; `id` grows with every write (see SpanVector)."""

    __tablename__ = "memory_vectors"
    __table_args__ = (Index("ix_memory_vectors_user_id", "user_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntPk, primary_key=True, autoincrement=True)
    memory_id: Mapped[str] = mapped_column(ForeignKey("memories.id", ondelete="CASCADE"), unique=True)
    user_id: Mapped[str] = mapped_column(String(128))
    scope: Mapped[str] = mapped_column(String(256))
    category: Mapped[str | None] = mapped_column(String(64), nullable=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
