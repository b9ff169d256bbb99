"""The write itself: prepared traces and span parts applied to a store, one transaction.

`apply` is plain synchronous code. On SQLite it runs on the database's writer thread against
`SqliteStore`; on PostgreSQL inside `AsyncConnection.run_sync` against `SqlStore`. The two stores
differ only in statements, so every path that writes traces follows these same rules.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.engine import Connection

from retrace_server.errors import DomainError
from retrace_server.ingest.contract import TraceMode, WriteOutcome
from retrace_server.ingest.errors import TraceExists, TraceNotFound
from retrace_server.ingest.merge import (
    SpanTotals,
    changed_columns,
    complete_span,
    latest_activity,
    merge_span,
    new_trace,
    settle_cost,
    totals,
    updated_trace,
)
from retrace_server.pricing import PriceTable


class TraceStore(Protocol):
    """Statements on one open transaction; rows in their stored form (`ingest.rows`)."""

    dialect: str

    def lock_trace(self, user_id: str, trace_id: str) -> None:
        """Serialises writers of one trace across processes (a no-op where one writer exists)."""

    def load_trace(self, user_id: str, trace_id: str) -> dict[str, Any] | None: ...

    def load_spans(self, user_id: str, trace_id: str, span_ids: list[str]) -> dict[str, dict[str, Any]]: ...

    def load_trace_spans(self, user_id: str, trace_id: str) -> list[dict[str, Any]]:
        """All spans of a trace, in start order."""

    def insert_trace(self, row: dict[str, Any]) -> bool:
        """False, storing nothing, when the user already has a trace with this id."""

    def update_trace(self, user_id: str, trace_id: str, values: dict[str, Any]) -> None: ...

    def insert_spans(self, rows: list[dict[str, Any]]) -> None: ...

    def update_spans(self, rows: list[dict[str, Any]]) -> None: ...

    def span_totals(self, user_id: str, trace_id: str) -> SpanTotals: ...

    def delete_trace(self, user_id: str, trace_id: str) -> bool:
        """Removes the trace with its spans; False when there was none."""

    def savepoint(self) -> contextlib.AbstractContextManager[None]: ...

    def sql(self) -> Connection:
        """A SQLAlchemy connection inside the same transaction, for write hooks."""


@dataclass
class PreparedWrite:
    """A `TraceWrite` with every value checked and encoded (on the event loop, before the store)."""

    trace_id: str
    mode: TraceMode
    fields: dict[str, Any]
    defaults: dict[str, Any]
    client_totals: dict[str, Any]
    spans: list[tuple[dict[str, Any], frozenset[str]]]
    context: dict[str, Any] = field(default_factory=dict)


@dataclass
class StoredTrace:
    """What an in-transaction hook sees of a write it may still refuse."""

    store: TraceStore
    user_id: str
    write: PreparedWrite
    trace: dict[str, Any]
    created: bool


StoredHook = Callable[[StoredTrace], bool]
"""Runs inside the write's transaction once its trace and spans are stored; raising a
`DomainError` refuses that write (nothing of it is stored). It answers True when it stored more
spans, so that the trace's totals are counted again."""


def apply(
    store: TraceStore,
    *,
    user_id: str,
    writes: list[PreparedWrite],
    prices: PriceTable,
    hooks: list[StoredHook],
    now: str,
) -> list[WriteOutcome]:
    """Each write commits or fails on its own: several in one call each get a savepoint."""
    outcomes = []
    isolate = len(writes) > 1
    for write in writes:
        try:
            with store.savepoint() if isolate else contextlib.nullcontext():
                outcomes.append(_apply_one(store, user_id, write, prices, hooks, now))
        except DomainError as exc:
            outcomes.append(WriteOutcome(trace_id=write.trace_id, error=exc))
    return outcomes


def _apply_one(
    store: TraceStore,
    user_id: str,
    write: PreparedWrite,
    prices: PriceTable,
    hooks: list[StoredHook],
    now: str,
) -> WriteOutcome:
    trace_id = write.trace_id
    if write.mode == "create":
        stored = None
    else:
        store.lock_trace(user_id, trace_id)
        stored = store.load_trace(user_id, trace_id)
        if stored is None and write.mode == "update":
            raise TraceNotFound(trace_id)

    if stored is None:
        trace = new_trace(
            trace_id=trace_id, user_id=user_id, fields=write.fields, defaults=write.defaults, now=now
        )
        rows, _ = _merged_spans(write, {}, user_id=user_id, now=now, prices=prices)
        span_totals = SpanTotals.of(rows)
        trace.update(
            totals(
                trace, span_totals, client=write.client_totals, last_activity_at=latest_activity(rows, None)
            )
        )
        if not store.insert_trace(trace):
            if write.mode == "create":
                raise TraceExists(trace_id)
            # Another process created it between our read and our insert: write as an update.
            return _apply_one(store, user_id, _as_update(write), prices, hooks, now)
        store.insert_spans(rows)
        created = True
    else:
        trace = updated_trace(stored, fields=write.fields, defaults=write.defaults, now=now)
        span_ids = list({values["id"]: None for values, _ in write.spans})
        known = store.load_spans(user_id, trace_id, span_ids) if span_ids else {}
        rows, updated = _merged_spans(write, known, user_id=user_id, now=now, prices=prices)
        new_rows = [row for row in rows if row["id"] not in known]
        store.insert_spans(new_rows)
        store.update_spans([row for row in rows if row["id"] in updated])
        client = {
            "total_tokens": stored["total_tokens"],
            "total_cost": stored["total_cost"],
            **write.client_totals,
        }
        last_activity_at = latest_activity(rows, stored["last_activity_at"])
        span_totals = store.span_totals(user_id, trace_id)
        trace.update(totals(trace, span_totals, client=client, last_activity_at=last_activity_at))
        trace["updated_at"] = now
        store.update_trace(user_id, trace_id, changed_columns(stored, trace))
        created = False

    stored_trace = StoredTrace(store=store, user_id=user_id, write=write, trace=trace, created=created)
    if any([hook(stored_trace) for hook in hooks]):
        before = dict(trace)
        client = {
            "total_tokens": trace["total_tokens"],
            "total_cost": trace["total_cost"],
            **write.client_totals,
        }
        spans = store.span_totals(user_id, trace_id)
        trace.update(totals(trace, spans, client=client, last_activity_at=trace["last_activity_at"]))
        store.update_trace(user_id, trace_id, changed_columns(before, trace))
    return WriteOutcome(trace_id=trace_id, trace=trace, created=created)


def _merged_spans(
    write: PreparedWrite,
    known: dict[str, dict[str, Any]],
    *,
    user_id: str,
    now: str,
    prices: PriceTable,
) -> tuple[list[dict[str, Any]], set[str]]:
    """Every span the write touches, merged with its stored row and earlier parts; and the ids of
    stored spans that changed."""
    merged: dict[str, dict[str, Any]] = {}
    positions: dict[str, int] = {}
    for index, (values, authority) in enumerate(write.spans):
        span_id = values["id"]
        positions[span_id] = index
        earlier = merged.get(span_id) or known.get(span_id)
        # A part seen once and stored nowhere is the span as it stands (it was encoded for us).
        merged[span_id] = values if earlier is None else merge_span(earlier, values, authority)
    rows = []
    changed = set()
    for span_id, row in merged.items():
        complete_span(
            row, trace_id=write.trace_id, user_id=user_id, now=now, at=f"spans[{positions[span_id]}]"
        )
        settle_cost(row, prices)
        stored = known.get(span_id)
        if stored is not None:
            if row == stored:
                continue
            changed.add(span_id)
        rows.append(row)
    return rows, changed


def _as_update(write: PreparedWrite) -> PreparedWrite:
    return PreparedWrite(
        trace_id=write.trace_id,
        mode="update",
        fields=write.fields,
        defaults=write.defaults,
        client_totals=write.client_totals,
        spans=write.spans,
        context=write.context,
    )
