"""Exact cosine search over one user's vectors, held in memory as a normalised float32 matrix
of their distinct vectors (spans with the same text share one row, scored once per query).

Rows arrive incrementally (`apply`), replace older versions of the same key, and are dropped
when their item turns out to be gone (`remove`). Each row carries a few attributes that
searches filter on, as numpy arrays, so a filter is a vectorised mask, not a query.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Mask = Callable[[Mapping[str, np.ndarray]], np.ndarray]


@dataclass(frozen=True)
class VectorRow:
    row_id: int
    key: Hashable
    vector: np.ndarray
    attrs: Mapping[str, Any]


@dataclass
class UserVectors:
    attr_names: tuple[str, ...]
    dim: int = 0
    size: int = 0
    alive: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    row_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    keys: list[Hashable] = field(default_factory=list)
    positions: dict[Hashable, int] = field(default_factory=dict)
    attrs: dict[str, np.ndarray] = field(default_factory=dict)
    # Identical texts have identical vectors: each distinct vector is held and scored once,
    # and `vector_of` maps a row to it.
    distinct: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    distinct_count: int = 0
    distinct_positions: dict[bytes, int] = field(default_factory=dict)
    vector_of: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def _grow(self, needed: int) -> None:
        capacity = len(self.alive)
        if needed <= capacity:
            return
        new_capacity = max(needed, capacity * 2, 256)
        self.vector_of = np.concatenate([self.vector_of, np.zeros(new_capacity - capacity, dtype=np.int64)])
        self.alive = np.concatenate([self.alive, np.zeros(new_capacity - capacity, dtype=bool)])
        self.row_ids = np.concatenate([self.row_ids, np.zeros(new_capacity - capacity, dtype=np.int64)])
        for name in self.attr_names:
            old = self.attrs.get(name, np.empty(0, dtype=object))
            self.attrs[name] = np.concatenate([old, np.empty(new_capacity - capacity, dtype=object)])

    def apply(self, rows: list[VectorRow]) -> None:
        if not rows:
            return
        if self.dim and rows[0].vector.shape[0] != self.dim:
            # The embedder changed (a reindex is rebuilding vectors): start over with the new size.
            self.__init__(self.attr_names)  # type: ignore[misc]
        if not self.dim:
            self.dim = rows[0].vector.shape[0]
            self.distinct = np.zeros((0, self.dim), dtype=np.float32)
        self._grow(self.size + len(rows))
        for row in rows:
            if row.vector.shape[0] != self.dim:
                continue
            position = self.positions.get(row.key)
            if position is None:
                position = self.size
                self.size += 1
                self.positions[row.key] = position
                self.keys.append(row.key)
            elif self.row_ids[position] >= row.row_id:
                continue
            self.vector_of[position] = self._distinct_position(row.vector)
            self.alive[position] = True
            self.row_ids[position] = row.row_id
            for name in self.attr_names:
                self.attrs[name][position] = row.attrs.get(name)

    def _distinct_position(self, vector: np.ndarray) -> int:
        blob = np.asarray(vector, dtype=np.float32).tobytes()
        found = self.distinct_positions.get(blob)
        if found is not None:
            return found
        if self.distinct_count == len(self.distinct):
            grown = np.zeros((max(256, 2 * len(self.distinct)), self.dim), dtype=np.float32)
            grown[: self.distinct_count] = self.distinct[: self.distinct_count]
            self.distinct = grown
        found = self.distinct_count
        self.distinct[found] = vector
        self.distinct_count += 1
        self.distinct_positions[blob] = found
        return found

    def remove(self, keys: Iterable[Hashable]) -> None:
        for key in keys:
            position = self.positions.get(key)
            if position is not None:
                self.alive[position] = False

    def search(self, query: np.ndarray, *, k: int, mask: Mask | None = None) -> list[tuple[Hashable, float]]:
        size = self.size
        if size == 0 or query.shape[0] != self.dim:
            return []
        scores = (self.distinct[: self.distinct_count] @ query)[self.vector_of[:size]]
        allowed = self.alive[:size]
        if mask is not None:
            allowed = allowed & mask({name: values[:size] for name, values in self.attrs.items()})
        scores[~allowed] = -np.inf
        k = min(k, int(np.count_nonzero(allowed)))
        if k <= 0:
            return []
        top = np.argpartition(scores, size - k)[size - k :]
        top = top[np.argsort(-scores[top])]
        return [(self.keys[i], float(scores[i])) for i in top]


class VectorIndex:
    """Every user's vectors of one kind (spans or memories), with the highest row id loaded."""

    def __init__(self, attr_names: tuple[str, ...]) -> None:
        self.attr_names = attr_names
        self._users: dict[str, UserVectors] = {}

    def user(self, user_id: str) -> UserVectors:
        vectors = self._users.get(user_id)
        if vectors is None:
            vectors = self._users[user_id] = UserVectors(self.attr_names)
        return vectors

    def clear(self) -> None:
        self._users.clear()
