"""A thread that repeats one piece of work on a SQLite connection of its own until stopped."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable

from retrace_server.db import faults

logger = logging.getLogger(__name__)


class ConnectionLoop:
    """Runs `step(connection)` again after the seconds it returns. A failed step is logged, its
    connection closed, and the step tried again on a new one after `retry` seconds."""

    def __init__(
        self,
        name: str,
        *,
        connect: Callable[[], sqlite3.Connection],
        step: Callable[[sqlite3.Connection], float],
        first_wait: float,
        retry: float,
    ) -> None:
        self._name = name
        self._connect = connect
        self._step = step
        self._first_wait = first_wait
        self._retry = retry
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stopping.set()
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self) -> None:
        connection: sqlite3.Connection | None = None
        wait = self._first_wait
        try:
            while not self._stopping.wait(wait):
                try:
                    connection = connection or self._connect()
                    wait = self._step(connection)
                except Exception as exc:
                    # A fault (a full disk) is logged once per outage, not once per attempt.
                    if faults.surface(exc) is None:
                        logger.exception("%s failed; it runs again in %.1f s", self._name, self._retry)
                    if connection is not None:
                        connection.close()
                    connection, wait = None, self._retry
        finally:
            if connection is not None:
                connection.close()
