"""A single writer thread for the hottest SQLite write path, committing queued work in groups.

A session hops threads once per statement while it holds the write lock; here each piece of
work runs in one hop, and everything queued meanwhile shares one transaction (one WAL commit,
and fewer, larger full-text index segments). Each piece runs under its own savepoint, so one
failure (a duplicate id, say) fails only its own request.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_GROUP = 64
Work = Callable[[sqlite3.Connection], Any]


@dataclass
class _Job:
    work: Work
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


class SqliteWriter:
    def __init__(self, path: str, pragmas: tuple[str, ...]) -> None:
        self._path = path
        self._pragmas = pragmas
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    async def run(self, work: Work) -> Any:
        """Runs `work(connection)` inside a committed transaction; raises what it raised."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._ensure_thread()
        self._jobs.put(_Job(work, future, loop))
        return await future

    def close(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    def _ensure_thread(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="retrace-sqlite-writer", daemon=True)
                self._thread.start()

    def _serve(self) -> None:
        connection: sqlite3.Connection | None = None
        try:
            while True:
                first = self._jobs.get()
                if first is None:
                    return
                group = [first]
                while len(group) < MAX_GROUP:
                    try:
                        job = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if job is None:
                        self._jobs.put(None)
                        break
                    group.append(job)
                if connection is None:
                    try:
                        connection = self._connect()
                    except Exception as exc:
                        # Every waiting request gets the error; the next group tries again.
                        _settle_all(group, exc)
                        continue
                self._commit_group(connection, group)
        finally:
            if connection is not None:
                connection.close()

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self._path, isolation_level=None, timeout=30, check_same_thread=False)
        for pragma in self._pragmas:
            connection.execute(pragma)
        return connection

    @staticmethod
    def _commit_group(connection: sqlite3.Connection, group: list[_Job]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        try:
            connection.execute("BEGIN IMMEDIATE")
            for job in group:
                connection.execute("SAVEPOINT work")
                try:
                    outcomes.append((True, job.work(connection)))
                    connection.execute("RELEASE work")
                except Exception as exc:
                    connection.execute("ROLLBACK TO work")
                    connection.execute("RELEASE work")
                    outcomes.append((False, exc))
            connection.execute("COMMIT")
        except Exception as exc:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            _settle_all(group, exc)
            return
        for job, (ok, value) in zip(group, outcomes, strict=True):
            _deliver(job, ok, value)


def _settle_all(group: list[_Job], exc: Exception) -> None:
    for job in group:
        _deliver(job, False, exc)


def _deliver(job: _Job, ok: bool, value: Any) -> None:
    # A closed event loop raises RuntimeError: its requester is gone, nobody is waiting any more.
    with contextlib.suppress(RuntimeError):
        job.loop.call_soon_threadsafe(_settle, job.future, ok, value)


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
