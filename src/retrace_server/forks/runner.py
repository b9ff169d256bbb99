"""Replays that outlive their request: asyncio tasks owned by the application."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from retrace_server.db.engine import Database
from retrace_server.forks import service
from retrace_server.ingest import Ingestor

log = logging.getLogger("retrace_server.forks")


class ReplayRunner:
    """Holds the running replays of this process, keeps their heartbeats and stops them at shutdown.

    It also fails, every HEARTBEAT_S, the replays of any process that stopped sending heartbeats
    (that process died), so a fork never answers `running` forever.
    """

    def __init__(self, db: Database, ingestor: Ingestor) -> None:
        self._db = db
        self._ingestor = ingestor
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._heartbeat: asyncio.Task[None] | None = None
        self._sweeper = asyncio.create_task(self._sweep(), name="replay-sweeper")

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(service.HEARTBEAT_S)
            try:
                failed = await service.fail_stale(self._db, self._ingestor)
            except Exception:
                log.exception("failing abandoned replays failed")
                continue
            if failed:
                log.warning("marked %d abandoned replays as failed", failed)

    def start(self, fork_id: str, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work, name=f"replay-{fork_id}")
        self._tasks[fork_id] = task
        task.add_done_callback(lambda done: self._forget(fork_id, done))
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.create_task(self._beat(), name="replay-heartbeat")
        return task

    def _forget(self, fork_id: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(fork_id) is task:
            del self._tasks[fork_id]

    async def _beat(self) -> None:
        # Long provider calls write nothing; the heartbeat tells other processes the replay lives.
        while self._tasks:
            await asyncio.sleep(service.HEARTBEAT_S)
            try:
                async with self._db.write() as session:
                    await service.heartbeat(session, list(self._tasks))
            except Exception:
                log.exception("replay heartbeat failed")

    async def shutdown(self) -> None:
        """Cancels the running replays; each marks its fork failed before it ends."""
        tasks = [*self._tasks.values(), self._sweeper]
        if self._heartbeat is not None:
            tasks.append(self._heartbeat)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def open_runner(db: Database, ingestor: Ingestor) -> ReplayRunner:
    """The process's runner, after failing the replays that a dead process left `running`."""
    failed = await service.fail_stale(db, ingestor)
    if failed:
        log.warning("marked %d abandoned replays as failed", failed)
    return ReplayRunner(db, ingestor)
