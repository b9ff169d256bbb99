from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from retrace_server.db.base import Base
from retrace_server.db.types import JsonColumn, UtcDateTime, utcnow


class Tape(Base):
    """A frozen, already-redacted copy of a trace; it has no link to the live trace rows."""

    __tablename__ = "tapes"
    __table_args__ = (
        Index("ix_tapes_visibility_created", "visibility", "created_at"),
        Index("ix_tapes_user_created", "user_id", "created_at"),
    )

    slug: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # Not a foreign key: the tape outlives the trace it was taken from.
    trace_id: Mapped[str] = mapped_column(String(128))
    title: Mapped[str | None] = mapped_column(String(512))
    description: Mapped[str | None] = mapped_column(Text)
    visibility: Mapped[str] = mapped_column(String(16))
    trace: Mapped[dict[str, Any]] = mapped_column(JsonColumn)
    spans: Mapped[list[dict[str, Any]]] = mapped_column(JsonColumn)
    span_count: Mapped[int] = mapped_column(Integer)
    redacted_count: Mapped[int] = mapped_column(Integer)
    redactions: Mapped[dict[str, int]] = mapped_column(JsonColumn)
    view_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
