"""How the trace store refuses a request, in its own words (rendered once, by `errors`)."""

from __future__ import annotations

from retrace_server.errors import Conflict, NotFound


class TraceNotFound(NotFound):
    def __init__(self, trace_id: str | None = None) -> None:
        super().__init__("Trace", message=f"Trace {trace_id!r} not found" if trace_id else None)


class TraceExists(Conflict):
    def __init__(self, trace_id: str) -> None:
        super().__init__(f"Trace {trace_id!r} already exists; use PATCH /api/v1/traces/{{id}} to add to it")
