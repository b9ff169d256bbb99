"""Which agents are connected, in the database so that every server process sees them all.

An agent is a stream authenticated with `resumable: true`. It can re-run the traced functions
it has recorded on that connection. A command for it is stored in `stream_commands`; the
process holding its connection picks it up at once when it is local, else within one poll.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from retrace_server.config import Settings
from retrace_server.db.engine import Database
from retrace_server.db.types import utcnow
from retrace_server.stream.models import StreamAgent, StreamAgentFunction, StreamCommand

# A connection whose process has not refreshed it for this many ping intervals is gone.
STALE_AFTER_PINGS = 3


@dataclass
class AgentLink:
    """One connected agent, as its connection sees it."""

    id: str
    user_id: str
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    functions: set[str] = field(default_factory=set)
    replaying: dict[str, str] = field(default_factory=dict)
    """Executions sent to this agent, by fork id: they stay alive while the connection does."""


KeepReplaysAlive = Callable[[AsyncSession, dict[str, str]], Awaitable[dict[str, str]]]
"""Given the executions sent to an agent (by fork id), refreshes those still running and answers
them; registered by the forks domain."""


class AgentRegistry:
    def __init__(self, db: Database, settings: Settings, *, keep_replays_alive: KeepReplaysAlive) -> None:
        self._db = db
        self._stale_after = timedelta(seconds=settings.stream_ping_interval_s * STALE_AFTER_PINGS)
        self._local: dict[str, AgentLink] = {}
        self._keep_replays_alive = keep_replays_alive

    async def connect(self, *, user_id: str, replay_generation: int) -> AgentLink:
        link = AgentLink(id=str(uuid.uuid4()), user_id=user_id)
        now = utcnow()
        async with self._db.write() as session:
            await session.execute(
                insert(StreamAgent).values(
                    id=link.id,
                    user_id=user_id,
                    replay_generation=replay_generation,
                    connected_at=now,
                    heartbeat_at=now,
                )
            )
        self._local[link.id] = link
        return link

    async def disconnect(self, link: AgentLink) -> None:
        self._local.pop(link.id, None)
        async with self._db.write() as session:
            await session.execute(delete(StreamAgent).where(StreamAgent.id == link.id))

    async def heartbeat(self, link: AgentLink) -> None:
        async with self._db.write() as session:
            await session.execute(
                update(StreamAgent).where(StreamAgent.id == link.id).values(heartbeat_at=utcnow())
            )
            if link.replaying:
                link.replaying = await self._keep_replays_alive(session, link.replaying)
            # Rows of processes that died without saying goodbye.
            await session.execute(
                delete(StreamAgent).where(
                    StreamAgent.user_id == link.user_id,
                    StreamAgent.heartbeat_at < utcnow() - self._stale_after,
                )
            )

    async def add_functions(self, link: AgentLink, names: set[str]) -> None:
        """Records trace names the agent has run; it registered them as resumable if it can re-run them."""
        new = names - link.functions
        if not new:
            return
        async with self._db.write() as session:
            dialect = self._db.dialect
            insert_fn = postgresql.insert if dialect == "postgresql" else sqlite.insert
            await session.execute(
                insert_fn(StreamAgentFunction).on_conflict_do_nothing(),
                [{"agent_id": link.id, "trace_name": name, "user_id": link.user_id} for name in sorted(new)],
            )
        link.functions |= new

    async def find(self, *, user_id: str, trace_name: str) -> str | None:
        """The most recently alive agent of the user that can re-run `trace_name`."""
        async with self._db.read() as session:
            return (
                await session.execute(
                    select(StreamAgent.id)
                    .join(StreamAgentFunction, StreamAgentFunction.agent_id == StreamAgent.id)
                    .where(
                        StreamAgentFunction.user_id == user_id,
                        StreamAgentFunction.trace_name == trace_name,
                        StreamAgent.heartbeat_at >= utcnow() - self._stale_after,
                    )
                    .order_by(StreamAgent.heartbeat_at.desc())
                    .limit(1)
                )
            ).scalar_one_or_none()

    async def send(self, agent_id: str, frame: dict[str, Any]) -> None:
        async with self._db.write() as session:
            await session.execute(
                insert(StreamCommand).values(agent_id=agent_id, frame=frame, created_at=utcnow())
            )
        local = self._local.get(agent_id)
        if local is not None:
            local.wake.set()

    async def take_commands(self, link: AgentLink) -> list[dict[str, Any]]:
        """The agent's waiting commands, oldest first, removed from the queue."""
        link.wake.clear()
        async with self._db.read() as session:
            rows = (
                await session.execute(
                    select(StreamCommand.id, StreamCommand.frame)
                    .where(StreamCommand.agent_id == link.id)
                    .order_by(StreamCommand.id)
                )
            ).all()
        if not rows:
            return []
        async with self._db.write() as session:
            await session.execute(delete(StreamCommand).where(StreamCommand.id.in_([r.id for r in rows])))
        commands = [dict(r.frame) for r in rows]
        link.replaying.update(
            {c["data"]["forkId"]: c["data"]["executionId"] for c in commands if c.get("type") == "resume"}
        )
        return commands


def agent_registry(app: Any) -> AgentRegistry:
    """The process's registry (made at start-up, with the forks domain's hook)."""
    registry: AgentRegistry = app.state.stream_agents
    return registry
