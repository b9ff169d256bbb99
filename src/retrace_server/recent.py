"""What a process remembers of its own database reads: bounded by entries (least recently used
out first) and, where a change made by another process must show within a moment, by age."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Recent(Generic[K, V]):
    def __init__(self, *, max_entries: int = 4096, max_age_s: float | None = None) -> None:
        self.max_entries = max_entries
        self.max_age_s = max_age_s
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def lookup(self, key: K) -> tuple[bool, V | None]:
        """(True, value) when `key` is remembered and not older than `max_age_s`, else (False, None)."""
        entry = self._entries.get(key)
        if entry is None:
            return False, None
        if self.max_age_s is not None and time.monotonic() - entry[0] > self.max_age_s:
            del self._entries[key]
            return False, None
        self._entries.move_to_end(key)
        return True, entry[1]

    def put(self, key: K, value: V) -> V:
        self._entries[key] = (time.monotonic(), value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return value

    def discard(self, key: K) -> None:
        self._entries.pop(key, None)

    def discard_where(self, match: Callable[[K], bool]) -> None:
        for key in [key for key in self._entries if match(key)]:
            del self._entries[key]
