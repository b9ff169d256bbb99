"""Answer shapes shared by every domain."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict

ItemT = TypeVar("ItemT")


class ListPage(BaseModel, Generic[ItemT]):
    """Every list answers this envelope: one page of items and how many match in all."""

    data: list[ItemT]
    total: int
    limit: int
    offset: int


class Answer(BaseModel):
    """Base of every answer model: the fields an answer carries, no others, so a field the
    server adds without declaring it fails the tests instead of going undocumented."""

    model_config = ConfigDict(extra="forbid")
