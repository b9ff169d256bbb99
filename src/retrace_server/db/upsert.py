"""One upsert for both databases: `INSERT ... ON CONFLICT` in PostgreSQL's or SQLite's dialect."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def insert_for(dialect: str) -> Callable[[Any], Any]:
    """`insert(table)` with `on_conflict_do_update` / `on_conflict_do_nothing` for `dialect`
    (for statements that need more than `insert_or_update`, such as `RETURNING`)."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


async def insert_or_update(
    session: AsyncSession,
    table: Table | type[Any],
    rows: Sequence[dict[str, Any]],
    *,
    keys: Sequence[str] = (),
    update_columns: Sequence[str] = (),
) -> None:
    """Inserts `rows` (keyed by column name); a row that conflicts with a stored one on `keys`
    updates that row's `update_columns` from it, or is skipped when no columns are given.

    Without `keys`, any unique constraint decides a conflict (skipping only).
    """
    if not rows:
        return
    target = table if isinstance(table, Table) else cast(Table, table.__table__)
    stmt: Any = insert_for(session.get_bind().dialect.name)(target)
    index_elements = [target.c[key] for key in keys] or None
    if update_columns:
        if index_elements is None:
            raise ValueError("an update on conflict needs the conflict's `keys`")
        stmt = stmt.on_conflict_do_update(
            index_elements=index_elements,
            set_={column: getattr(stmt.excluded, column) for column in update_columns},
        )
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=index_elements)
    await session.execute(stmt, list(rows))
