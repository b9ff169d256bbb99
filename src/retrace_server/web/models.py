from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from retrace_server.db.base import Base
from retrace_server.db.types import UtcDateTime


class WebSession(Base):
    """A browser signed in to the web interface. The cookie holds a random token; only its
    SHA-256 is stored, so a copy of the database opens no session."""

    __tablename__ = "web_sessions"
    __table_args__ = (Index("ix_web_sessions_expires_at", "expires_at"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # The hash of the API key the session was opened with: revoking or rotating that key ends
    # the session. Null for a session opened with a JWT.
    api_key_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    auth_method: Mapped[str] = mapped_column(String(16))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
