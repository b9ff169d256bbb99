"""The upsert statement of the database in use (SQLite and PostgreSQL spell it alike)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite


def insert_for(dialect: str) -> Callable[[Any], Any]:
    """`insert(table)` with `on_conflict_do_update` / `on_conflict_do_nothing` for `dialect`."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert
