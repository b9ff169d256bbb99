"""Runs the Alembic migrations, the only way the schema is made."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection

from retrace_server.db.engine import make_engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Arbitrary constant: serialises migrations of several processes starting on one PostgreSQL.
_PG_MIGRATION_LOCK = 7_420_613


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


async def upgrade(database_url: str, revision: str = "heads") -> None:
    """Bring the database to `revision` (all domain branches by default)."""
    engine = make_engine(database_url, pool_size=1, foreign_keys=False)
    try:
        runner = (
            engine.execution_options(sqlite_immediate=True) if database_url.startswith("sqlite") else engine
        )
        async with runner.begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            await conn.run_sync(_run, database_url, "upgrade", revision)
    finally:
        await engine.dispose()


async def downgrade(database_url: str, revision: str = "base") -> None:
    engine = make_engine(database_url, pool_size=1, foreign_keys=False)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run, database_url, "downgrade", revision)
    finally:
        await engine.dispose()


def _run(connection: Connection, database_url: str, action: str, revision: str) -> None:
    cfg = alembic_config(database_url)
    cfg.attributes["connection"] = connection
    getattr(command, action)(cfg, revision)
    if connection.dialect.name == "sqlite":
        # Migrations run with SQLite's foreign keys off (table rebuilds need it): check them all
        # before committing, so a migration never leaves a dangling reference behind.
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"migration left rows with broken foreign keys: {broken[:5]}")
