"""Keeps a process's in-memory vectors in step with the database.

Vector rows get a new, larger id on every write, so each search loads only rows above the
highest id it has seen. On PostgreSQL concurrent writers may commit ids out of order, so
reads there overlap the ids of the last few seconds, up to a few thousand ids (re-applying
a row is harmless, and write transactions of vectors are short).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from retrace_server.embeddings.index import UserVectors, VectorIndex, VectorRow

PG_OVERLAP_S = 10.0
PG_OVERLAP_IDS = 5000


def to_blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def from_blob(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float32)


def epoch(moment: datetime) -> float:
    return moment.timestamp()


class SyncedIndex:
    def __init__(
        self,
        *,
        id_column: Any,
        user_column: Any,
        key_column: Any,
        vector_column: Any,
        attr_columns: dict[str, Any],
        attr_converters: dict[str, Callable[[Any], Any]] | None = None,
    ) -> None:
        self.index = VectorIndex(tuple(attr_columns))
        self._id = id_column
        self._user = user_column
        self._key = key_column
        self._vector = vector_column
        self._attrs = attr_columns
        self._convert = attr_converters or {}
        self._watermarks: dict[str, int] = {}
        self._history: dict[str, deque[tuple[float, int]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def _since(self, user_id: str, *, overlap: bool) -> int:
        if not overlap:
            return self._watermarks.get(user_id, 0)
        history = self._history.get(user_id)
        cutoff = time.monotonic() - PG_OVERLAP_S
        safe = 0
        for moment, watermark in history or ():
            if moment <= cutoff:
                safe = watermark
        return max(safe, self._watermarks.get(user_id, 0) - PG_OVERLAP_IDS)

    async def refresh(self, session: AsyncSession, user_id: str) -> UserVectors:
        lock = self._locks.setdefault(user_id, asyncio.Lock())
        async with lock:
            overlap = session.get_bind().dialect.name == "postgresql"
            since = self._since(user_id, overlap=overlap)
            columns: list[ColumnElement[Any]] = [self._id, self._key, self._vector, *self._attrs.values()]
            result = await session.execute(
                select(*columns).where(self._user == user_id, self._id > since).order_by(self._id)
            )
            rows = []
            highest = self._watermarks.get(user_id, 0)
            names = list(self._attrs)
            for record in result:
                row_id, key, blob = record[0], record[1], record[2]
                attrs = {}
                for name, value in zip(names, record[3:], strict=True):
                    convert = self._convert.get(name)
                    attrs[name] = convert(value) if convert and value is not None else value
                rows.append(VectorRow(row_id=row_id, key=key, vector=from_blob(blob), attrs=attrs))
                highest = max(highest, row_id)
            vectors = self.index.user(user_id)
            vectors.apply(rows)
            self._watermarks[user_id] = highest
            history = self._history.setdefault(user_id, deque(maxlen=64))
            now = time.monotonic()
            if not history or now - history[-1][0] >= 1.0:
                history.append((now, highest))
            return vectors

    def forget(self, user_id: str, keys: Iterable[Hashable]) -> None:
        self.index.user(user_id).remove(keys)

    def reset(self) -> None:
        self.index.clear()
        self._watermarks.clear()
        self._history.clear()
