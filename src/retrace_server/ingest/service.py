"""`Ingestor.write`: the one way traces and spans are stored.

Values are checked and encoded on the event loop; the write runs as one job of the SQLite
writer thread (the only writer of its file in the process) or in one PostgreSQL transaction.
Hooks registered by higher domains run inside the transaction (and may refuse a write) or after
it commits (and never fail it).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

import orjson
from sqlalchemy.exc import DBAPIError

from retrace_server.db import faults
from retrace_server.db.engine import Database
from retrace_server.db.types import sqlite_timestamp, utcnow
from retrace_server.errors import DomainError
from retrace_server.ingest.contract import TraceWrite, WriteOutcome
from retrace_server.ingest.rows import check_id, encode_client_totals, encode_span, encode_trace_fields
from retrace_server.ingest.sql_store import SqlStore
from retrace_server.ingest.sqlite_store import SqliteStore
from retrace_server.ingest.store import PreparedWrite, StoredHook, apply
from retrace_server.pricing import PriceTable

log = logging.getLogger("retrace_server.ingest")
T = TypeVar("T")

AdmissionHook = Callable[[str, TraceWrite], Awaitable[None]]
"""Asked with the user id before a new trace (a write in `create` mode) is stored; raising a
`DomainError` refuses that write (the plan's monthly quota)."""

CommittedHook = Callable[[str, list[TraceWrite], list[WriteOutcome]], Awaitable[None]]
"""Runs after a write commits, with the user id, the writes and their outcomes (in the same order);
it may add `notes` to outcomes; its errors are logged only."""


class Ingestor:
    """Writes traces and spans for every path (REST, the stream, replays, OTLP)."""

    def __init__(self, db: Database, *, prices: PriceTable) -> None:
        self.db = db
        self.prices = prices
        self.admission_hooks: list[AdmissionHook] = []
        self.stored_hooks: list[StoredHook] = []
        self.committed_hooks: list[CommittedHook] = []

    async def write(self, *, user_id: str, writes: list[TraceWrite]) -> list[WriteOutcome]:
        """One outcome per write, in order; each write is stored whole or not at all."""
        prepared: list[PreparedWrite] = []
        refused: dict[int, WriteOutcome] = {}
        for index, write in enumerate(writes):
            try:
                if write.mode == "create":
                    for admit in self.admission_hooks:
                        await admit(user_id, write)
                prepared.append(prepare(write))
            except DomainError as exc:
                refused[index] = WriteOutcome(trace_id=write.trace_id, error=exc)
        stored = await self._store(user_id, prepared) if prepared else []
        outcomes = [refused[i] if i in refused else stored.pop(0) for i in range(len(writes))]
        await self._after_commit(user_id, writes, outcomes)
        return outcomes

    async def delete(self, *, user_id: str, trace_id: str) -> bool:
        """Removes a trace with its spans; False when the user has no such trace."""
        if self.db.is_sqlite:
            deleted: bool = await self.db.write_sqlite_direct(
                lambda connection: SqliteStore(connection).delete_trace(user_id, trace_id), one_statement=True
            )
            return deleted
        return await self._on_postgres(lambda store: store.delete_trace(user_id, trace_id))

    async def _store(self, user_id: str, prepared: list[PreparedWrite]) -> list[WriteOutcome]:
        run = partial(
            apply, user_id=user_id, writes=prepared, prices=self.prices, hooks=self.stored_hooks,
            now=sqlite_timestamp(utcnow()),
        )  # fmt: skip
        try:
            if self.db.is_sqlite:
                outcomes: list[WriteOutcome] = await self.db.write_sqlite_direct(
                    lambda connection: run(SqliteStore(connection))
                )
            else:
                outcomes = await self._on_postgres(run)
        except DomainError as exc:
            # A lone write raises, so that its transaction (not only a savepoint) is undone; with
            # several, only a fault of the database (each write refused alone is an outcome)
            # gets here, and it failed them all.
            return [WriteOutcome(trace_id=write.trace_id, error=exc) for write in prepared]
        return outcomes

    async def _on_postgres(self, work: Callable[[SqlStore], T]) -> T:
        """`work` in one transaction, run again when PostgreSQL aborts it as a deadlock's victim:
        writes lock rows of several tables (a trace delete cascades to many), and a concurrent
        writer can take them in another order. Every write here is safe to run again whole."""
        for attempt in range(DEADLOCK_ATTEMPTS):
            try:
                async with self.db.engine.begin() as connection:
                    return await connection.run_sync(lambda sync: work(SqlStore(sync)))
            except DBAPIError as exc:
                if not _is_deadlock(exc) or attempt == DEADLOCK_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def _after_commit(
        self, user_id: str, writes: list[TraceWrite], outcomes: list[WriteOutcome]
    ) -> None:
        for hook in self.committed_hooks:
            try:
                await hook(user_id, writes, outcomes)
            except Exception as exc:
                if faults.surface(exc) is None:  # an outage is logged once, by `faults`
                    log.exception("a hook after storing traces failed (user %s)", user_id)


def prepare(write: TraceWrite) -> PreparedWrite:
    """Checks and encodes a write; `InvalidInput` names the field (`spans[2].input_tokens`)."""
    trace_id = check_id(write.trace_id, field="id")
    return PreparedWrite(
        trace_id=trace_id,
        mode=write.mode,
        fields=encode_trace_fields(write.fields, keep_nulls=True),
        defaults=encode_trace_fields(write.defaults, keep_nulls=False),
        client_totals=encode_client_totals(write.client_totals),
        spans=[
            (encode_span(part.values, at=f"spans[{i}]"), part.authority) for i, part in enumerate(write.spans)
        ],
        context=write.context,
    )


# A transaction PostgreSQL aborts to resolve a deadlock is run again, up to this many times in all.
DEADLOCK_ATTEMPTS = 3

_TRACE_API_COLUMNS = (
    "id",
    "name",
    "status",
    "input",
    "output",
    "metadata",
    "session_id",
    "project_id",
    "error",
    "lossy",
    "started_at",
    "ended_at",
    "total_tokens",
    "total_cost",
    "total_duration_ms",
    "span_count",
    "created_at",
    "updated_at",
)


def api_trace(row: dict[str, Any]) -> dict[str, Any]:
    """A stored trace row (an outcome's `trace`) as the API answers it."""
    trace = {column: row.get(column) for column in _TRACE_API_COLUMNS}
    for column in ("input", "output", "metadata"):
        value = trace[column]
        trace[column] = orjson.loads(value) if isinstance(value, str) else value
    trace["lossy"] = bool(trace["lossy"])
    return trace


def _is_deadlock(exc: DBAPIError) -> bool:
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return code == "40P01" or "deadlock detected" in str(exc.orig)
