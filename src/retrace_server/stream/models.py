"""Connected agents and the commands waiting for them, shared by every server process."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from retrace_server.db.base import Base
from retrace_server.db.types import BigIntPk, JsonColumn, UtcDateTime, utcnow


class StreamAgent(Base):
    """A live stream connection that accepts resume commands (`resumable: true` in its auth frame)."""

    __tablename__ = "stream_agents"
    __table_args__ = (Index("ix_stream_agents_user_heartbeat", "user_id", "heartbeat_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    replay_generation: Mapped[int] = mapped_column(Integer, default=1)
    connected_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class StreamAgentFunction(Base):
    """A traced function an agent has run on its connection, so it can re-run it."""

    __tablename__ = "stream_agent_functions"
    __table_args__ = (Index("ix_stream_agent_functions_user_name", "user_id", "trace_name"),)

    agent_id: Mapped[str] = mapped_column(
        ForeignKey("stream_agents.id", ondelete="CASCADE"), primary_key=True
    )
    trace_name: Mapped[str] = mapped_column(String(512), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128))


class StreamCommand(Base):
    """A command for one agent, delivered by whichever process holds its connection."""

    __tablename__ = "stream_commands"

    id: Mapped[int] = mapped_column(BigIntPk, primary_key=True, autoincrement=True)
    agent_id: Mapped[str] = mapped_column(ForeignKey("stream_agents.id", ondelete="CASCADE"), index=True)
    frame: Mapped[dict[str, Any]] = mapped_column(JsonColumn)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
