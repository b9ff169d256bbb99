from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from retrace_server.db.base import Base
from retrace_server.db.types import UtcDateTime, utcnow


class WebhookEvent(Base):
    """A `webhook-id` already processed: Dodo retries a delivery until it gets a 2xx."""

    __tablename__ = "billing_webhook_events"

    id: Mapped[str] = mapped_column(String(256), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(128))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
