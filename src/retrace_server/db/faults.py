"""Database faults told apart from bugs, in one place.

A fault is not the request's fault nor the code's: PostgreSQL restarting or out of reach
(`DatabaseUnavailable`, answered 503 with `Retry-After`), or a full disk (`DiskFull`, 507). Every
layer that meets a database exception asks `surface(exc)`: the HTTP middleware, the SQLite writer
thread, the background loops and the stream's error frames. An outage is logged once, in one
line, when it starts; the requests it fails meanwhile are not logged one by one.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import await_only

from retrace_server.errors import DomainError, ServiceUnavailable

log = logging.getLogger("retrace_server.db.faults")

RETRY_AFTER_S = 1
"""What `Retry-After` advises while the database is unavailable: PostgreSQL restarts in seconds."""
DISK_FULL_RETRY_AFTER_S = 30
"""What `Retry-After` advises on a full disk: freeing space takes someone a while."""
CONNECT_RETRY_DELAY_S = 0.5
"""A connection attempt refused because PostgreSQL restarts is tried once more after this."""
OUTAGE_QUIET_S = 10.0
"""A fault this long after the previous one of its kind starts a new outage (and a new log line)."""

# SQLite's primary result codes (the low byte of `sqlite_errorcode`).
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_FULL = 5, 6, 13
# SQLSTATEs: disk full; connection exceptions (class 08); shutting down, crash, starting up;
# too many connections.
_PG_DISK_FULL = "53100"
_PG_UNAVAILABLE = frozenset({"57P01", "57P02", "57P03", "53300"})
_CONNECTION_ERRORS = (ConnectionError, socket.gaierror, TimeoutError)


class DatabaseUnavailable(ServiceUnavailable):
    """The database cannot be reached for now (restarting, down, out of connections, locked)."""

    def __init__(self, cause: str, *, retry_after: int = RETRY_AFTER_S) -> None:
        super().__init__(
            f"The database is unavailable for a moment ({cause}); nothing was stored. "
            f"Retry after {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
        )
        self.cause = cause


class DiskFull(DomainError):
    """The database's disk has no room: writes fail until an operator frees space."""

    status = 507

    def __init__(self, *, retry_after: int = DISK_FULL_RETRY_AFTER_S) -> None:
        super().__init__(
            "The server's disk is full: nothing was stored. Retry once space has been freed on the "
            "database's volume.",
            headers={"Retry-After": str(retry_after)},
        )


Fault = DatabaseUnavailable | DiskFull


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception, what it wraps (`orig` of SQLAlchemy's errors) and what caused it."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop(0)
        if current is None or id(current) in seen or len(seen) > 16:
            continue
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        pending.extend(
            [orig if isinstance(orig, BaseException) else None, current.__cause__, current.__context__]
        )


def classify(exc: BaseException) -> Fault | None:
    """The fault behind a database exception, or None when it is not one (a bug, a bad request)."""
    database_error = False
    for cause in _causes(exc):
        if isinstance(cause, DatabaseUnavailable | DiskFull):
            return cause
        if isinstance(cause, OSError) and cause.errno == errno.ENOSPC:
            return DiskFull()
        if isinstance(cause, sqlite3.Error):
            code = getattr(cause, "sqlite_errorcode", None)
            primary = code & 0xFF if isinstance(code, int) else None
            if primary == _SQLITE_FULL or "database or disk is full" in str(cause):
                return DiskFull()
            if primary in (_SQLITE_BUSY, _SQLITE_LOCKED):
                return DatabaseUnavailable("the database is locked by another writer")
            database_error = True
        elif isinstance(cause, asyncpg.PostgresError | asyncpg.InterfaceError):
            sqlstate = getattr(cause, "sqlstate", None) or ""
            if sqlstate == _PG_DISK_FULL:
                return DiskFull()
            if sqlstate.startswith("08") or sqlstate in _PG_UNAVAILABLE or _closed_connection(cause):
                return DatabaseUnavailable(_describe(cause))
            database_error = True
        elif isinstance(cause, sa_exc.TimeoutError):
            return DatabaseUnavailable("every database connection is busy")
        elif isinstance(cause, sa_exc.DBAPIError):
            if cause.connection_invalidated:
                return DatabaseUnavailable("the connection to the database was lost")
            database_error = True
        elif database_error and isinstance(cause, _CONNECTION_ERRORS):
            return DatabaseUnavailable(_describe(cause))
    return None


def connect_failure(exc: BaseException) -> Fault | None:
    """`classify` for an attempt to open a connection, where a refused socket means a server down."""
    fault = classify(exc)
    if fault is not None:
        return fault
    for cause in _causes(exc):
        if isinstance(cause, _CONNECTION_ERRORS):
            return DatabaseUnavailable(_describe(cause))
    return None


def _closed_connection(exc: BaseException) -> bool:
    return isinstance(exc, asyncpg.InterfaceError) and "connection is closed" in str(exc)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncpg.CannotConnectNowError):
        return "the database system is starting up"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, asyncpg.AdminShutdownError | asyncpg.ConnectionDoesNotExistError):
        return "the database server is shutting down"
    if isinstance(exc, asyncpg.TooManyConnectionsError):
        return "the database has no connection to spare"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:120]


class _OutageLog:
    """Logs the first fault of each outage in one line; the rest of the outage stays quiet."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_seen: dict[str, float] = {}

    def note(self, fault: Fault, exc: BaseException) -> None:
        kind = type(fault).__name__
        now = time.monotonic()
        with self._lock:
            last = self._last_seen.get(kind)
            self._last_seen[kind] = now
        if last is not None and now - last <= OUTAGE_QUIET_S:
            return
        if isinstance(fault, DiskFull):
            log.error(
                "Disk full: writes answer 507 until space is freed on the database's volume (%s: %s)",
                type(exc).__name__,
                _describe(exc),
            )
        else:
            log.warning(
                "Database unavailable (%s): requests answer 503 with Retry-After until it is back; "
                "further failures of this outage are not logged",
                fault.cause,
            )

    def forget(self) -> None:
        with self._lock:
            self._last_seen.clear()


outages = _OutageLog()


def surface(exc: BaseException) -> Fault | None:
    """`classify`, noting the fault in the outage log: for code that turns it into an answer."""
    fault = classify(exc)
    if fault is not None:
        outages.note(fault, exc)
    return fault


def surfaced(exc: Exception) -> Exception:
    """The fault behind `exc` when there is one, else `exc` itself."""
    return surface(exc) or exc


def install_connect_retry(engine: AsyncEngine) -> None:
    """A connection refused because PostgreSQL restarts (or is briefly out of reach) is tried once
    more before the request is answered 503. Stale pooled connections are already replaced at
    checkout (`pool_pre_ping`), through this same hook."""

    @event.listens_for(engine.sync_engine, "do_connect")
    def _connect_once_more(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        try:
            return dialect.connect(*cargs, **cparams)
        except Exception as exc:
            if connect_failure(exc) is None:
                raise
        await_only(asyncio.sleep(CONNECT_RETRY_DELAY_S))
        try:
            return dialect.connect(*cargs, **cparams)
        except Exception as exc:
            fault = connect_failure(exc)
            if fault is None:
                raise
            outages.note(fault, exc)
            raise fault from exc
