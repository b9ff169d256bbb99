from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, ForeignKeyConstraint, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from retrace_server.db.base import Base
from retrace_server.db.types import JsonColumn, UtcDateTime, utcnow


class Fork(Base):
    """A branch of a trace at one span, with the changes to replay from there."""

    __tablename__ = "forks"
    __table_args__ = (
        Index("ix_forks_user_created", "user_id", "created_at"),
        Index("ix_forks_user_trace_created", "user_id", "trace_id", "created_at"),
        Index("ix_forks_status_heartbeat", "status", "heartbeat_at"),
        # Deleting the original trace deletes its forks; result traces stay (they are ordinary traces).
        ForeignKeyConstraint(
            ["user_id", "trace_id"],
            ["traces.user_id", "traces.id"],
            name="fk_forks_trace",
            ondelete="CASCADE",
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    trace_id: Mapped[str] = mapped_column(String(128))
    fork_point_span_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str | None] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16), default="created")
    modified_input: Mapped[Any] = mapped_column(JsonColumn, nullable=True)
    model: Mapped[str | None] = mapped_column(String(256))
    parameters: Mapped[dict[str, Any]] = mapped_column(JsonColumn, default=dict)
    result_trace_id: Mapped[str | None] = mapped_column(String(128))
    execution_id: Mapped[str | None] = mapped_column(String(36))
    error: Mapped[str | None] = mapped_column(Text)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ForkRun(Base):
    """One replay of a fork: its effective changes, its result trace and how it ended."""

    __tablename__ = "fork_runs"
    __table_args__ = (Index("ix_fork_runs_fork_started", "fork_id", "started_at"),)

    execution_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    fork_id: Mapped[str] = mapped_column(ForeignKey("forks.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="running")
    modified_input: Mapped[Any] = mapped_column(JsonColumn, nullable=True)
    model: Mapped[str | None] = mapped_column(String(256))
    parameters: Mapped[dict[str, Any]] = mapped_column(JsonColumn, default=dict)
    result_trace_id: Mapped[str | None] = mapped_column(String(128))
    error: Mapped[str | None] = mapped_column(Text)
    failed_step: Mapped[dict[str, Any] | None] = mapped_column(JsonColumn, nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
