"""The statements that record an execution's life on the fork, shared by async sessions and by
ingest hooks (which run inside the transaction that stores the execution's spans)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Executable, update

from retrace_server.db.types import utcnow
from retrace_server.forks.models import Fork, ForkRun


def result_trace_statements(*, fork_id: str, execution_id: str, trace_id: str) -> list[Executable]:
    """Links the execution's result trace."""
    return [
        update(ForkRun).where(ForkRun.execution_id == execution_id).values(result_trace_id=trace_id),
        update(Fork)
        .where(Fork.id == fork_id, Fork.execution_id == execution_id)
        .values(result_trace_id=trace_id, updated_at=utcnow()),
    ]


def finish_statements(
    *,
    fork_id: str,
    execution_id: str,
    status: str,
    error: str | None = None,
    failed_step: dict[str, Any] | None = None,
) -> list[Executable]:
    """Ends the execution (and the fork's run, if it is still the current one)."""
    now = utcnow()
    return [
        update(ForkRun)
        .where(ForkRun.execution_id == execution_id)
        .values(status=status, error=error, failed_step=failed_step, ended_at=now),
        update(Fork)
        .where(Fork.id == fork_id, Fork.execution_id == execution_id)
        .values(status=status, error=error, heartbeat_at=now, updated_at=now),
    ]


def heartbeat_statements(fork_ids: list[str]) -> list[Executable]:
    if not fork_ids:
        return []
    return [update(Fork).where(Fork.id.in_(fork_ids), Fork.status == "running").values(heartbeat_at=utcnow())]
