"""Refusals of the forks domain."""

from __future__ import annotations

from retrace_server.errors import Conflict, NotFound


class ForkNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("Fork")


class ForkedTraceNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("Trace")


class ForkSpanNotFound(NotFound):
    def __init__(self, *, span_id: str, trace_id: str) -> None:
        super().__init__("Span", message=f"Span {span_id!r} not found in trace {trace_id!r}")


class ForkBusy(Conflict):
    def __init__(self, fork_id: str) -> None:
        super().__init__(f"Fork {fork_id!r} is already replaying; wait until it completes or fails")


class ForkNotReplayed(Conflict):
    def __init__(self, fork_id: str) -> None:
        super().__init__(
            f"Fork {fork_id!r} has not been replayed yet: POST /api/v1/forks/{fork_id}/replay first"
        )


class ForkResultDeleted(Conflict):
    def __init__(self, fork_id: str) -> None:
        super().__init__(f"The result trace of fork {fork_id!r} was deleted; replay the fork again")


class ForkPointGone(Conflict):
    def __init__(self, span_id: str) -> None:
        super().__init__(f"The fork point span {span_id!r} is no longer in the trace")


class ExecutionNotCurrent(Conflict):
    """A live agent claimed an execution that is not (or no longer) the fork's current one."""

    def __init__(self, *, execution_id: str, current: str | None, known: bool) -> None:
        reason = "has been superseded by a newer replay" if known else "is not an execution of this fork"
        super().__init__(f"Execution {execution_id!r} {reason}; the current one is {current!r}")


class NoAgentConnected(Conflict):
    """`mode: agent` and no live agent is connected for the forked trace."""

    def __init__(self, trace_name: str | None) -> None:
        super().__init__(
            f"No agent is connected for trace {trace_name!r}: run it with "
            "`@retrace.record(..., resumable=True)` and RETRACE_ALLOW_REMOTE_REPLAY=true, "
            'or replay it on the server with {"mode": "server"}'
        )
