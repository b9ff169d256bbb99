"""The SQLite writer thread: each piece of work commits whole or not at all, alone or grouped."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from retrace_server.db.engine import SQLITE_PRAGMAS
from retrace_server.db.sqlite_writer import SqliteWriter


@pytest.fixture
def writer(tmp_path: Path) -> SqliteWriter:
    path = str(tmp_path / "writer.db")
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, label TEXT NOT NULL)")
    return SqliteWriter(path, SQLITE_PRAGMAS)


def _labels(writer: SqliteWriter) -> dict[int, str]:
    with sqlite3.connect(writer._path) as db:
        return dict(db.execute("SELECT id, label FROM items").fetchall())


def _insert_one(item: int, label: str) -> Callable[[sqlite3.Connection], object]:
    return lambda connection: connection.execute("INSERT INTO items VALUES (?, ?)", (item, label))


def _insert_pair(first: int, second: int) -> Callable[[sqlite3.Connection], int]:
    """Two statements; the second fails when `second` is taken."""

    def work(connection: sqlite3.Connection) -> int:
        connection.execute("INSERT INTO items VALUES (?, 'a')", (first,))
        connection.execute("INSERT INTO items VALUES (?, 'b')", (second,))
        return first

    return work


def test_lone_work_that_fails_midway_leaves_nothing(writer: SqliteWriter) -> None:
    async def scenario() -> None:
        assert await writer.run(_insert_pair(1, 2)) == 1
        with pytest.raises(sqlite3.IntegrityError):
            await writer.run(_insert_pair(3, 2))
        with pytest.raises(sqlite3.IntegrityError):
            await writer.run(_insert_one(1, "again"), one_statement=True)
        await writer.run(_insert_one(4, "c"), one_statement=True)

    try:
        asyncio.run(scenario())
    finally:
        writer.close()
    assert _labels(writer) == {1: "a", 2: "b", 4: "c"}


def test_failures_in_a_crowd_undo_only_their_own_work(writer: SqliteWriter) -> None:
    async def scenario() -> list[object]:
        await writer.run(_insert_one(1000, "taken"), one_statement=True)
        jobs = []
        for n in range(1, 200):
            # Every fifth piece of work collides with the taken id on its second statement.
            jobs.append(writer.run(_insert_pair(n, 1000 if n % 5 == 0 else n + 500)))
        for n in range(300, 400):
            jobs.append(writer.run(_insert_one(n, "x"), one_statement=True))
        return await asyncio.gather(*jobs, return_exceptions=True)

    try:
        outcomes = asyncio.run(scenario())
    finally:
        writer.close()
    failed = {
        n for n, outcome in zip(range(1, 200), outcomes, strict=False) if isinstance(outcome, Exception)
    }
    assert failed == {n for n in range(1, 200) if n % 5 == 0}
    labels = _labels(writer)
    for n in range(1, 200):
        assert (n in labels) == (n not in failed)
        assert (n + 500 in labels) == (n not in failed)
    assert all(labels[n] == "x" for n in range(300, 400))


def test_a_session_holding_the_write_turn_keeps_the_writer_thread_waiting(writer: SqliteWriter) -> None:
    """Writes through sessions and the writer thread share one queue: never two writers at once."""

    async def scenario() -> list[str]:
        order: list[str] = []
        async with writer.hold():
            queued = asyncio.ensure_future(writer.run(_insert_one(1, "after"), one_statement=True))
            queued.add_done_callback(lambda _: order.append("writer"))
            # The session writes the file on a connection of its own while it holds the turn.
            with sqlite3.connect(writer._path, timeout=0) as session:
                session.execute("INSERT INTO items VALUES (2, 'session')")
            await asyncio.sleep(0.2)
            order.append("session done")
            assert not queued.done()
        await queued
        return order

    try:
        order = asyncio.run(scenario())
    finally:
        writer.close()
    assert order == ["session done", "writer"]
    assert _labels(writer) == {1: "after", 2: "session"}


def _thread_of_insert(item: int) -> Callable[[sqlite3.Connection], int]:
    def work(connection: sqlite3.Connection) -> int:
        connection.execute("INSERT INTO items VALUES (?, 'inline?')", (item,))
        return threading.get_ident()

    return work


def test_inline_work_runs_on_the_callers_thread_while_the_writer_is_idle(writer: SqliteWriter) -> None:
    async def scenario() -> None:
        caller = threading.get_ident()
        assert await writer.run(_thread_of_insert(1)) != caller, "queued work runs on the writer"
        assert await writer.run(_thread_of_insert(2), urgent=True) == caller
        with pytest.raises(sqlite3.IntegrityError):
            await writer.run(_insert_pair(3, 2), urgent=True)

    try:
        asyncio.run(scenario())
    finally:
        writer.close()
    assert _labels(writer) == {1: "inline?", 2: "inline?"}, "failed inline work left nothing"


def test_inline_work_is_queued_while_a_session_or_another_process_writes(writer: SqliteWriter) -> None:
    async def scenario() -> None:
        caller = threading.get_ident()
        await writer.run(_insert_one(1, "opens the writer's connection"), one_statement=True)
        async with writer.hold():
            behind_session = asyncio.ensure_future(writer.run(_thread_of_insert(2), urgent=True))
            await asyncio.sleep(0.1)
            assert not behind_session.done()
        assert await behind_session != caller

        other_process = sqlite3.connect(writer._path, isolation_level=None)
        other_process.execute("BEGIN IMMEDIATE")
        behind_process = asyncio.ensure_future(writer.run(_thread_of_insert(3), urgent=True))
        started = time.monotonic()
        await asyncio.sleep(0.1)
        # The event loop went on: the inline attempt did not wait on the other process's lock.
        assert time.monotonic() - started < 5
        assert not behind_process.done()
        other_process.execute("COMMIT")
        other_process.close()
        assert await behind_process != caller

    try:
        asyncio.run(scenario())
    finally:
        writer.close()
    assert set(_labels(writer)) == {1, 2, 3}


def test_urgent_work_runs_ahead_of_queued_work(writer: SqliteWriter) -> None:
    order: list[str] = []
    started, release = threading.Event(), threading.Event()

    def slow(connection: sqlite3.Connection) -> None:
        started.set()
        release.wait(10)
        order.append("in progress")

    def note(label: str) -> Callable[[sqlite3.Connection], None]:
        return lambda _connection: order.append(label)

    async def scenario() -> None:
        in_progress = asyncio.ensure_future(writer.run(slow))
        while not started.is_set():
            await asyncio.sleep(0.01)
        queued = [asyncio.ensure_future(writer.run(note(f"queued {n}"))) for n in range(5)]
        await asyncio.sleep(0)  # the queued work is in the writer's queue
        urgent = asyncio.ensure_future(writer.run(note("urgent"), urgent=True))
        await asyncio.sleep(0)
        release.set()
        await asyncio.gather(in_progress, urgent, *queued)

    try:
        asyncio.run(scenario())
    finally:
        writer.close()
    assert order == ["in progress", "urgent", *(f"queued {n}" for n in range(5))]
