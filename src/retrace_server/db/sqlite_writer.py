"""The one writer of a SQLite file in this process: a thread committing queued work in groups.

A session hops threads once per statement while it holds the write lock; here each piece of
work runs in one hop, and everything queued meanwhile shares one transaction (one WAL commit).
Each piece runs under its own savepoint, so one failure (a duplicate id, say) fails only its own
request; a piece alone in its group needs none.

Writes through SQLAlchemy sessions (`Database.write`) take their turn in the same queue: the
thread lets a session through (`hold`) and waits until it commits, so two writers of the file
never meet in SQLite's busy wait.

Short work that a caller waits on (the guardrail check) may be `urgent`: when the thread is
idle it runs on the caller's thread over the same connection, which saves the two thread
hand-overs that cost more than the work; when the thread is busy it runs ahead of queued work
(after the group in progress), so it does not wait behind a backlog of ingestion.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import queue
import sqlite3
import sys
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, cast

from retrace_server.db import faults
from retrace_server.db.background import ConnectionLoop

MAX_GROUP = 64
SWITCH_INTERVAL = 0.0002
CHECKPOINT_EVERY = 0.5
RESTART_FRAMES = 8192  # 32 MiB of 4 KiB pages
STATEMENT_CACHE = 256
Work = Callable[[sqlite3.Connection], Any]

logger = logging.getLogger(__name__)


@dataclass
class _Job:
    work: Work
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    one_statement: bool
    # Set for a session's turn (`hold`): the thread waits for it instead of running work.
    released: threading.Event | None = None


# Put in the queue after urgent work, to wake the thread for it; never run.
_WAKE = cast(_Job, object())

_Outcome = tuple[_Job, bool, Any]
"""A job, whether its work succeeded, and its result or exception."""


class SqliteWriter:
    def __init__(self, path: str, pragmas: tuple[str, ...]) -> None:
        self._path = path
        self._inode = 0
        self._pragmas = pragmas
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._urgent: collections.deque[_Job] = collections.deque()
        self._held_back: _Job | None = None
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._checkpointer = _Checkpointer(self._open)
        # Held by the thread while it works on a group (or lets a session write), and by a
        # caller running urgent work itself: whoever holds it owns `_connection`.
        self._busy = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._busy_timeout_ms = 0

    async def run(self, work: Work, *, one_statement: bool = False, urgent: bool = False) -> Any:
        """Runs `work(connection)` inside a committed transaction; raises what it raised.

        Work that executes `one_statement` needs no savepoint, since SQLite undoes a failed
        statement itself, nor a transaction of its own when nothing else is queued. `urgent`
        work runs on the caller's thread when the writer is idle (it blocks the caller for its
        duration), and otherwise ahead of the queued work.
        """
        if urgent:
            done, result = self._run_inline(work)
            if done:
                return result
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._ensure_thread()
        job = _Job(work, future, loop, one_statement)
        if urgent:
            self._urgent.append(job)
            self._jobs.put(_WAKE)
        else:
            self._jobs.put(job)
        return await future

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """The file's write turn for a session: work queued before runs first, work queued
        during waits until the block ends."""
        loop = asyncio.get_running_loop()
        released = threading.Event()
        future: asyncio.Future[Any] = loop.create_future()
        self._ensure_thread()
        self._jobs.put(_Job(_no_work, future, loop, False, released))
        try:
            await future
            yield
        finally:
            released.set()

    def close(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join(timeout=30)
            self._thread = None
            self._checkpointer.stop()

    def _ensure_thread(self) -> None:
        with self._start_lock:
            if self._thread is None:
                # The writer waits for the GIL after each statement while the event loop holds
                # it; the default 5 ms hand-over would stall every write behind request parsing.
                sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
                self._thread = threading.Thread(target=self._serve, name="retrace-sqlite-writer", daemon=True)
                self._thread.start()
                self._checkpointer.start()

    def _run_inline(self, work: Work) -> tuple[bool, Any]:
        """(True, result) when `work` ran here; (False, None) when the thread is busy or has work
        queued, another process holds the file's write lock, or the log is due a restart (the
        thread's to do): then the caller queues it."""
        if self._held_back is not None or self._urgent or not self._jobs.empty():
            return False, None
        if not self._busy.acquire(blocking=False):
            return False, None
        try:
            connection = self._connection
            if connection is None or self._checkpointer.restart_due() or not self._still_open_file():
                return False, None
            # Never wait here for another process's write: that would stall the event loop.
            connection.execute("PRAGMA busy_timeout=0")
            try:
                try:
                    connection.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError:
                    return False, None
                try:
                    result = work(connection)
                    connection.execute("COMMIT")
                except BaseException as exc:
                    if connection.in_transaction:
                        connection.execute("ROLLBACK")
                    fault = faults.surfaced(exc) if isinstance(exc, Exception) else exc
                    if fault is exc:
                        raise
                    raise fault from exc
                return True, result
            finally:
                connection.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
        finally:
            self._busy.release()

    def _serve(self) -> None:
        try:
            while True:
                group, stopping = self._next_group()
                with self._busy:
                    outcomes = self._work_on(group)
                # Answered once the connection is free, so that a requester's next urgent work
                # finds the writer idle.
                for job, ok, value in outcomes:
                    _deliver(job, ok, value)
                if outcomes and self._checkpointer.restart_due():
                    with self._busy:
                        self._restart_log()
                if stopping:
                    return
        finally:
            with self._busy:
                if self._connection is not None:
                    self._connection.close()
                    self._connection = None

    def _work_on(self, group: list[_Job]) -> list[_Outcome]:
        """Runs the group; its outcomes are to be delivered (a session's turn is delivered here,
        since the thread then waits for it)."""
        if group and group[0].released is not None:
            self._let_session_write(group[0])
        elif group:
            if self._connection is not None and not self._still_open_file():
                # The file was deleted or replaced: writing on would store into a file nobody
                # can open again. Reopen (or fail the requests if that fails).
                self._connection.close()
                self._connection = None
            try:
                connection = self._connection = self._connection or self._connect()
            except Exception as exc:
                # Every waiting request gets the error; the next group tries again.
                return _all_failed(group, exc)
            return self._commit_group(connection, group)
        return []

    def _next_group(self) -> tuple[list[_Job], bool]:
        """Urgent work, else queued work; and whether to stop after it. A session's turn is a
        group of its own."""
        if self._urgent:
            return self._urgent_group(), False
        first, self._held_back = self._held_back, None
        while first is None or first is _WAKE:
            first = self._jobs.get()
            if first is None:
                return [], True
            if first is _WAKE and self._urgent:
                return self._urgent_group(), False
        group = [first]
        if first.released is not None:
            return group, False
        while len(group) < MAX_GROUP:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return group, True
            if job is _WAKE:
                continue
            if job.released is not None:
                self._held_back = job
                break
            group.append(job)
        return group, False

    def _urgent_group(self) -> list[_Job]:
        group: list[_Job] = []
        while self._urgent and len(group) < MAX_GROUP:
            group.append(self._urgent.popleft())
        return group

    @staticmethod
    def _let_session_write(turn: _Job) -> None:
        """Outside any transaction of this thread: the session takes the file's lock itself."""
        assert turn.released is not None
        _deliver(turn, True, None)
        turn.released.wait()

    def _still_open_file(self) -> bool:
        try:
            return os.stat(self._path).st_ino == self._inode
        except OSError:
            return False

    def _connect(self) -> sqlite3.Connection:
        connection = self._open()
        self._inode = os.stat(self._path).st_ino
        self._busy_timeout_ms = int(connection.execute("PRAGMA busy_timeout").fetchone()[0])
        return connection

    def _open(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self._path,
            isolation_level=None,
            timeout=30,
            check_same_thread=False,
            # Batch inserts prepare one statement per batch size (`traces.sqlite_ingest`).
            cached_statements=STATEMENT_CACHE,
        )
        for pragma in self._pragmas:
            connection.execute(pragma)
        # Checkpoints (copying the log into the database, with its fsyncs) are `_Checkpointer`'s.
        connection.execute("PRAGMA wal_autocheckpoint=0")
        return connection

    def _restart_log(self) -> None:
        if self._connection is None:
            return
        try:
            self._checkpointer.restart(self._connection)
        except sqlite3.Error:
            logger.exception("Restarting the SQLite write-ahead log failed; it is tried again later")

    @staticmethod
    def _commit_group(connection: sqlite3.Connection, group: list[_Job]) -> list[_Outcome]:
        if len(group) == 1:
            return [_commit_alone(connection, group[0])]
        outcomes: list[tuple[bool, Any]] = []
        try:
            connection.execute("BEGIN IMMEDIATE")
            for job in group:
                if job.one_statement:
                    try:
                        outcomes.append((True, job.work(connection)))
                    except Exception as exc:
                        if not connection.in_transaction:
                            raise  # an error that ended the transaction fails the whole group
                        outcomes.append((False, exc))
                    continue
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
            return _all_failed(group, exc)
        return [(job, ok, value) for job, (ok, value) in zip(group, outcomes, strict=True)]


class _Checkpointer:
    """Copies the write-ahead log into the database from a thread of its own, so that the
    writer never stops for it. A passive checkpoint waits for no reader or writer.

    A passive checkpoint never starts the log over, and under steady writes no moment comes
    when it could: the log grew by gigabytes in a minute of ingestion, and writes slowed as it
    grew. Once it holds `RESTART_FRAMES` pages, the writer restarts it between two groups of
    work (`restart_due`), when it holds no lock: that waits only for the readers of the moment
    (milliseconds), and the next write starts the log from the top, its file cut back to
    `journal_size_limit`. From this thread a restart starved: the writer took the lock back
    after every commit.
    """

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._pages_in_log = 0
        self._loop = ConnectionLoop(
            "retrace-sqlite-checkpoint",
            connect=connect,
            step=self._checkpoint,
            first_wait=CHECKPOINT_EVERY,
            retry=CHECKPOINT_EVERY,
        )

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()

    def restart_due(self) -> bool:
        return self._pages_in_log >= RESTART_FRAMES

    def restart(self, connection: sqlite3.Connection) -> None:
        """Called by the writer, between transactions, on its own connection."""
        self._pages_in_log = 0
        connection.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()

    def _checkpoint(self, connection: sqlite3.Connection) -> float:
        _, self._pages_in_log, _ = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return CHECKPOINT_EVERY


def _no_work(_connection: sqlite3.Connection) -> None:
    return None


def _commit_alone(connection: sqlite3.Connection, job: _Job) -> _Outcome:
    """Work that is alone in its group needs no savepoint, and one statement no transaction
    either (it commits itself): each statement costs the writer a wait for the GIL."""
    try:
        if job.one_statement:
            result = job.work(connection)
        else:
            connection.execute("BEGIN IMMEDIATE")
            try:
                result = job.work(connection)
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
    except Exception as exc:
        return job, False, exc
    return job, True, result


def _all_failed(group: list[_Job], exc: Exception) -> list[_Outcome]:
    return [(job, False, exc) for job in group]


def _deliver(job: _Job, ok: bool, value: Any) -> None:
    if not ok:
        # A full disk (at COMMIT, typically) reaches the requester as `DiskFull`, not a raw error.
        value = faults.surfaced(value)
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
