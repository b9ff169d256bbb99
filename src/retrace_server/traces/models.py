from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from retrace_server.db.base import Base
from retrace_server.db.types import BigIntPk, JsonColumn, UtcDateTime, utcnow


class Trace(Base):
    __tablename__ = "traces"
    __table_args__ = (
        # Each list filter walks one index in list order; `id` breaks ties and covers the page query.
        Index("ix_traces_user_started", "user_id", "started_at", "id"),
        Index("ix_traces_user_status_started", "user_id", "status", "started_at", "id"),
        Index("ix_traces_user_session_started", "user_id", "session_id", "started_at", "id"),
        Index("ix_traces_user_name_started", "user_id", "name", "started_at", "id"),
        Index("ix_traces_user_project_started", "user_id", "project_id", "started_at", "id"),
    )

    # Client-chosen ids are unique per user: one tenant's ids never block or reveal another's.
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16), default="running")
    input: Mapped[Any] = mapped_column(JsonColumn, nullable=True)
    output: Mapped[Any] = mapped_column(JsonColumn, nullable=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JsonColumn, default=dict)
    session_id: Mapped[str | None] = mapped_column(String(256))
    error: Mapped[str | None] = mapped_column(Text)
    lossy: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_activity_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    total_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    total_cost: Mapped[float] = mapped_column(Float, default=0.0)
    total_duration_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    span_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    project_id: Mapped[str | None] = mapped_column(String(256))


class Span(Base):
    __tablename__ = "spans"
    __table_args__ = (
        UniqueConstraint("user_id", "trace_id", "id", name="uq_spans_user_trace_id"),
        ForeignKeyConstraint(
            ["user_id", "trace_id"],
            ["traces.user_id", "traces.id"],
            name="fk_spans_trace",
            ondelete="CASCADE",
        ),
        Index("ix_spans_trace_started", "user_id", "trace_id", "started_at"),
    )

    # An integer row id lets full-text and vector indexes point at spans cheaply.
    pk: Mapped[int] = mapped_column(BigIntPk, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(128))
    trace_id: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[str] = mapped_column(String(128))
    parent_id: Mapped[str | None] = mapped_column(String(128))
    span_type: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(512), default="")
    model: Mapped[str | None] = mapped_column(String(256))
    input: Mapped[Any] = mapped_column(JsonColumn, nullable=True)
    output: Mapped[Any] = mapped_column(JsonColumn, nullable=True)
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    cost: Mapped[float | None] = mapped_column(Float)
    duration_ms: Mapped[int | None] = mapped_column(BigInteger)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JsonColumn, default=dict)
    agent_id: Mapped[str | None] = mapped_column(String(256))
    parent_agent_id: Mapped[str | None] = mapped_column(String(256))
    agent_role: Mapped[str | None] = mapped_column(String(256))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    # "reported" when the client sent the cost, "estimated" when the price table computed it.
    cost_source: Mapped[str | None] = mapped_column(String(16))


# Every column of a span row but its integer key, which the database assigns.
SPAN_ROW_COLUMNS = [c for c in Span.__table__.columns if c.key != "pk"]


class TraceCount(Base):
    """Traces per user and status, kept by database triggers on `traces`."""

    __tablename__ = "trace_counts"

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)


class TraceName(Base):
    """Each distinct trace name a user has used, kept by database triggers on `traces`."""

    __tablename__ = "trace_names"

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(512), primary_key=True)
