from __future__ import annotations

from datetime import datetime

from pydantic import Field

from retrace_server.schemas import Answer


class ApiKeyCreated(Answer):
    key: str = Field(description="The key itself: shown only in this answer, store it now.")
    prefix: str = Field(description="First characters of the key, to recognise it later.")
    created_at: datetime


class ApiKeyStatus(Answer):
    """The user's active key, never the key itself."""

    exists: bool = Field(description="Whether the user has an active key")
    prefix: str | None = None
    created_at: datetime | None = None
    last_used_at: datetime | None = Field(None, description="Updated at most once a minute")
