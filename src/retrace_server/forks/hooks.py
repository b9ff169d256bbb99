"""What the forks domain does inside the transaction that stores a trace (an ingest hook).

- A replay's writes carry their execution in the write's context: a step batch refreshes the
  fork's heartbeat, the last write ends the execution, in the same transaction as its spans.
- A trace the SDK uploads at the end of a cascade replay (its metadata names the fork and the
  execution) becomes the execution's result, only if that execution is still the fork's current
  one; otherwise the upload is refused and nothing of it is stored.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from sqlalchemy import select

from retrace_server.errors import Conflict
from retrace_server.forks.executions import finish_statements, heartbeat_statements, result_trace_statements
from retrace_server.forks.models import Fork
from retrace_server.ingest import StoredTrace
from retrace_server.ingest.rows import json_text, merge_json_objects

EXECUTION = "fork_execution"
"""`TraceWrite.context` key: {"fork_id", "execution_id"} and, on the last write, "status",
"error", "failed_step"."""


def on_trace_stored(stored: StoredTrace) -> bool:
    """The ingest hook; True when it stored more spans (the trace's totals are then refreshed)."""
    execution = stored.write.context.get(EXECUTION)
    if execution is not None:
        _record_execution(stored, execution)
        return False
    if stored.created:
        return _adopt_cascade_result(stored)
    return False


def _record_execution(stored: StoredTrace, execution: dict[str, Any]) -> None:
    connection = stored.store.sql()
    fork_id, execution_id = execution["fork_id"], execution["execution_id"]
    if "status" in execution:
        statements = finish_statements(
            fork_id=fork_id,
            execution_id=execution_id,
            status=execution["status"],
            error=execution.get("error"),
            failed_step=execution.get("failed_step"),
        )
    else:
        statements = heartbeat_statements([fork_id])
    for statement in statements:
        connection.execute(statement)


def numbered_by_sdk(span: dict[str, Any]) -> bool:
    """The spans the SDK numbers in a replay (and suppresses before the fork point)."""
    if span["span_type"] == "llm_call":
        return True
    metadata = span.get("metadata")
    if isinstance(metadata, str):
        return '"tool_call_id"' in metadata and "tool_call_id" in orjson.loads(metadata)
    return "tool_call_id" in (metadata or {})


def _adopt_cascade_result(stored: StoredTrace) -> bool:
    metadata = orjson.loads(stored.trace.get("metadata") or "{}")
    fork_id, execution_id = metadata.get("_fork_id"), metadata.get("_fork_execution_id")
    if not (metadata.get("_cascade_replay") and isinstance(fork_id, str) and isinstance(execution_id, str)):
        return False
    connection = stored.store.sql()
    query = select(Fork).where(Fork.id == fork_id, Fork.user_id == stored.user_id)
    if stored.store.dialect == "postgresql":
        query = query.with_for_update()
    fork = connection.execute(query).first()
    if fork is None:
        return False  # not one of this user's forks: an ordinary trace
    if fork.execution_id != execution_id or fork.status != "running":
        raise Conflict(
            f"Execution {execution_id!r} of fork {fork_id!r} is no longer current (the fork is "
            f"{fork.status}, its execution {fork.execution_id!r}); this replay result is not stored"
        )
    trace = stored.trace
    spans = stored.store.load_trace_spans(stored.user_id, fork.trace_id)
    fork_index = next((i for i, s in enumerate(spans) if s["id"] == fork.fork_point_span_id), len(spans))
    id_map = {s["id"]: str(uuid.uuid4()) for s in spans}
    copies = [
        copy_stored_span(s, id_map, trace_id=trace["id"], mode="recorded")
        for s in spans[:fork_index]
        if numbered_by_sdk(s)
    ]
    stored.store.insert_spans(copies)
    marks = {
        "fork_of": fork.trace_id,
        "fork_id": fork_id,
        "fork_point_span_id": fork.fork_point_span_id,
        "execution_id": execution_id,
    }
    trace["metadata"] = merge_json_objects(
        trace["metadata"], json_text(marks, field="metadata"), field="metadata"
    )
    stored.store.update_trace(stored.user_id, trace["id"], {"metadata": trace["metadata"]})
    status = "failed" if trace["status"] == "failed" else "completed"
    for statement in [
        *result_trace_statements(fork_id=fork_id, execution_id=execution_id, trace_id=trace["id"]),
        *finish_statements(fork_id=fork_id, execution_id=execution_id, status=status, error=trace["error"]),
    ]:
        connection.execute(statement)
    return bool(copies)


def copy_stored_span(
    span: dict[str, Any], id_map: dict[str, str], *, trace_id: str, mode: str
) -> dict[str, Any]:
    """A stored span copied into another trace under a new id, marked with where it came from."""
    copy = dict(span)
    parent = span.get("parent_id")
    copy["id"] = id_map[span["id"]]
    copy["trace_id"] = trace_id
    copy["parent_id"] = id_map.get(parent, parent) if parent else None
    marks = json_text({"replay": mode, "original_span_id": span["id"]}, field="metadata")
    copy["metadata"] = merge_json_objects(span.get("metadata"), marks, field="metadata")
    return copy
