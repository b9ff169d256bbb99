from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class ApiKeyCreated(BaseModel):
    key: str = Field(description="The key itself: shown only in this answer, store it now.")
    prefix: str = Field(description="First characters of the key, to recognise it later.")
    created_at: datetime


class ApiKeyStatus(BaseModel):
    exists: bool
    prefix: str | None = None
    created_at: datetime | None = None
    last_used_at: datetime | None = None
