"""The migrations make exactly the schema the models describe, and undo it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from retrace_server.db import migrate
from retrace_server.db.engine import make_engine
from retrace_server.tables import metadata
from tests.conftest import POSTGRES_URL
from tests.support.server import fresh_database


def _schema_drift(url: str) -> list[object]:
    async def _compare() -> list[object]:
        engine = make_engine(url)
        try:
            async with engine.connect() as conn:

                def _diff(sync_conn: Connection) -> list[object]:
                    context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
                    return [d for d in compare_metadata(context, metadata) if not _is_dialect_only_object(d)]

                return await conn.run_sync(_diff)
        finally:
            await engine.dispose()

    return asyncio.run(_compare())


# Full-text and vector structures made with raw DDL in the migrations, which the models do not
# describe: FTS5 tables (and their shadow tables), tsvector and pgvector columns and indexes.
RAW_DDL_NAMES = ("spans_fts", "search_document", "embedding", "_hnsw")


def _is_dialect_only_object(diff: object) -> bool:
    text = repr(diff)
    return text.startswith(("('remove_table'", "('remove_index'", "('remove_column'")) and any(
        name in text for name in RAW_DDL_NAMES
    )


def _tables(url: str) -> set[str]:
    async def _names() -> set[str]:
        engine = make_engine(url)
        try:
            async with engine.connect() as conn:
                return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        finally:
            await engine.dispose()

    return asyncio.run(_names())


def test_migrations_match_models_and_downgrade(backend: str, tmp_path: Path) -> None:
    with fresh_database(backend, str(tmp_path), POSTGRES_URL) as url:
        asyncio.run(migrate.upgrade(url))
        assert {"users", "api_keys", "traces", "spans"} <= _tables(url)
        assert _schema_drift(url) == []
        # Running again is a no-op, as on every `serve` start.
        asyncio.run(migrate.upgrade(url))
        asyncio.run(migrate.downgrade(url))
        assert _tables(url) <= {"alembic_version"}
