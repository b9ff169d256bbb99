"""Answer shapes shared by every domain."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel

ItemT = TypeVar("ItemT")


class ListPage(BaseModel, Generic[ItemT]):
    """Every list answers this envelope: one page of items and how many match in all."""

    data: list[ItemT]
    total: int
    limit: int
    offset: int
