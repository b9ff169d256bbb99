"""Answers about semantic indexing."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class IndexingStatus(BaseModel):
    backlog: int = Field(description="Spans waiting to be embedded for search by meaning.")
    oldest_age_s: float = Field(description="Seconds the oldest of them has waited (0 when none).")
    checked_at: datetime = Field(description="When the backlog was last read (every few seconds).")
