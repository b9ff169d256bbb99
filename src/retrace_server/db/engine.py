"""Database engine and sessions, with SQLite tuned for a single busy writer."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import orjson
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from retrace_server.config import Settings
from retrace_server.db.faults import install_connect_retry
from retrace_server.db.sqlite_writer import SqliteWriter


def json_text(value: Any) -> str:
    """How JSON columns are written (SQLAlchemy's JSON type stores None as JSON null)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def make_engine(url: str, *, pool_size: int = 10, foreign_keys: bool = True) -> AsyncEngine:
    """`foreign_keys=False` is for migrations only: SQLite rebuilds a table by copying it, and
    dropping the old one would otherwise cascade into every table that references it."""
    if url.startswith("sqlite"):
        engine = create_async_engine(
            url,
            json_serializer=json_text,
            json_deserializer=orjson.loads,
            connect_args={"timeout": 30, "isolation_level": None},
            pool_size=pool_size,
            # Sessions end their own transactions and reads run in autocommit, so a returned
            # connection has nothing to roll back: skip that thread round trip.
            pool_reset_on_return=None,
        )
        _tune_sqlite(engine, foreign_keys=foreign_keys)
        return engine
    engine = create_async_engine(
        url,
        json_serializer=json_text,
        json_deserializer=orjson.loads,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
    )
    install_connect_retry(engine)
    return engine


T = TypeVar("T")
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=30000",
    "PRAGMA cache_size=-65536",
    "PRAGMA temp_store=MEMORY",
    # When the write-ahead log starts over, its file is cut back to 64 MiB.
    "PRAGMA journal_size_limit=67108864",
)


def _tune_sqlite(engine: AsyncEngine, *, foreign_keys: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
        if not foreign_keys:
            cursor.execute("PRAGMA foreign_keys=OFF")
        cursor.close()

    # The driver runs in autocommit mode so that we choose how transactions begin: writers take
    # the write lock up front (BEGIN IMMEDIATE), which avoids SQLITE_BUSY on lock upgrades
    # between processes that share the file. Read sessions stay in autocommit: each statement
    # reads a consistent snapshot, and a request saves the BEGIN/ROLLBACK round trips.
    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get("sqlite_immediate"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """Owns the engine of one process; hands out read sessions and serialised write sessions."""

    def __init__(self, settings: Settings) -> None:
        self.url = settings.database_url
        self.is_sqlite = settings.is_sqlite
        self.engine = make_engine(self.url, pool_size=settings.database_pool_size)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        writer = self.engine.execution_options(sqlite_immediate=True) if self.is_sqlite else self.engine
        self._write_sessions = async_sessionmaker(writer, expire_on_commit=False)
        self._direct_writer: SqliteWriter | None = None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as session:
            yield session

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session whose work commits atomically at the end of the block (or rolls back).

        On SQLite the session waits for its turn on the writer thread, the file's one writer in
        this process; so the block must not itself wait for a write of the writer thread
        (`Ingestor.write`), which would wait for the block.
        """
        if not self.is_sqlite:
            async with self._write_sessions() as session, session.begin():
                yield session
            return
        async with self._sqlite_writer().hold(), self._write_sessions() as session, session.begin():
            yield session

    async def write_sqlite_direct(
        self,
        work: Callable[[sqlite3.Connection], T],
        *,
        one_statement: bool = False,
        urgent: bool = False,
    ) -> T:
        """Runs `work` in a SQLite transaction on the writer thread; `urgent` work on this one
        when the writer is idle, else ahead of queued work (see `SqliteWriter.run`)."""
        result: T = await self._sqlite_writer().run(work, one_statement=one_statement, urgent=urgent)
        return result

    def _sqlite_writer(self) -> SqliteWriter:
        if self._direct_writer is None:
            self._direct_writer = SqliteWriter(str(self.engine.url.database), SQLITE_PRAGMAS)
        return self._direct_writer

    async def dispose(self) -> None:
        if self._direct_writer is not None:
            await asyncio.to_thread(self._direct_writer.close)
        await self.engine.dispose()
