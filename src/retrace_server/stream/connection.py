"""One `/ws/v1/stream` connection: authentication, acknowledged ingestion, keep-alive, commands.

Reading and storing run apart: frames read while a batch is being stored form the next batch,
so a busy client is stored in few transactions, and pings are answered while a batch is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from pydantic import ValidationError
from pydantic_core import from_json
from starlette.websockets import WebSocket, WebSocketDisconnect

from retrace_server.auth.dependencies import CurrentUser
from retrace_server.jsonutil import dumps
from retrace_server.stream import frames
from retrace_server.stream.access import AUTH_FAILED_CLOSE, StreamRefused, admit_trace, authenticate
from retrace_server.stream.agents import STALE_AFTER_PINGS, AgentLink, AgentRegistry, agent_registry
from retrace_server.stream.frames import INGEST_TYPES, AuthFrame, FrameError, TraceStarted, parse_frame
from retrace_server.stream.ingest import Outcome, StreamIngestor

log = logging.getLogger("retrace_server.stream")

AUTH_TIMEOUT_S = 10.0
MAX_BATCH = 200
# Frames read but not yet stored; beyond this the reader waits, and TCP slows the client down.
INBOX_SIZE = 2000
IDLE_CLOSE = 4008
_AUTH_HELP = 'the first frame must be {"type": "auth", "api_key": "rt_..."}'


class StreamConnection:
    def __init__(self, websocket: WebSocket) -> None:
        self._ws = websocket
        self._db = websocket.app.state.db
        self._settings = websocket.app.state.settings
        self._agents: AgentRegistry = agent_registry(websocket.app)
        self._inbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=INBOX_SIZE)
        self._send_lock = asyncio.Lock()
        self._open = True
        self._last_heard = time.monotonic()

    async def serve(self) -> None:
        await self._ws.accept()
        hello = await self._authenticate()
        if hello is None:
            return
        user, auth = hello
        agent = (
            await self._agents.connect(user_id=user.id, replay_generation=auth.replay_generation)
            if auth.resumable
            else None
        )
        await self._send({"type": "auth_ok", "user_id": user.id, "acks": True, "resumable": auth.resumable})
        ingestor = StreamIngestor(
            self._ws.app.state.ingest, user_id=user.id, admit_trace=lambda: admit_trace(self._ws, user)
        )
        reader = asyncio.create_task(self._read())
        storing = asyncio.create_task(self._store_inbox(ingestor, agent))
        helpers = [asyncio.create_task(self._keep_alive(reader, agent))]
        if agent is not None:
            helpers.append(asyncio.create_task(self._deliver_commands(agent)))
        try:
            await reader
        finally:
            # What was read is stored even when the client has gone: the SDK counts on it.
            await self._inbox.put(None)
            await storing
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            if agent is not None:
                await self._agents.disconnect(agent)

    async def _authenticate(self) -> tuple[CurrentUser, AuthFrame] | None:
        try:
            raw = await asyncio.wait_for(self._receive(), AUTH_TIMEOUT_S)
        except TimeoutError:
            await self._refuse(f"Authentication timed out: {_AUTH_HELP}", AUTH_FAILED_CLOSE)
            return None
        if raw is None:
            return None
        try:
            auth = AuthFrame.model_validate_json(raw)
        except ValidationError:
            await self._refuse(f"Authentication required: {_AUTH_HELP}", AUTH_FAILED_CLOSE)
            return None
        try:
            user = await authenticate(self._ws, auth.api_key)
        except StreamRefused as exc:
            await self._refuse(exc.message, exc.close_code)
            return None
        return user, auth

    async def _refuse(self, message: str, close_code: int) -> None:
        await self._send(frames.error(message))
        with contextlib.suppress(Exception):
            await self._ws.close(code=close_code, reason=message[:120])
        self._open = False

    async def _receive(self) -> str | None:
        """The next message's text, or None once the client has gone."""
        try:
            message = await self._ws.receive()
        except (WebSocketDisconnect, RuntimeError):
            return None
        if message["type"] == "websocket.disconnect":
            return None
        self._last_heard = time.monotonic()
        text = message.get("text")
        if text is None:
            text = (message.get("bytes") or b"").decode("utf-8", "replace")
        return str(text)

    async def _read(self) -> None:
        while (raw := await self._receive()) is not None:
            await self._on_message(raw)

    async def _on_message(self, raw: str) -> None:
        if len(raw) > self._settings.max_body_bytes:
            await self._send(
                frames.error(f"Frame too large: the limit is {self._settings.max_body_bytes} bytes")
            )
            return
        try:
            # pydantic's parser keeps integers beyond 64 bits exact (orjson would make floats of
            # them), so that they are refused by name rather than stored changed.
            message = from_json(raw)
        except ValueError:
            await self._send(frames.error("Invalid JSON frame"))
            return
        if not isinstance(message, dict):
            await self._send(frames.error("A frame must be a JSON object with a `type`"))
            return
        kind = message.get("type")
        if kind in INGEST_TYPES:
            await self._inbox.put(message)
        elif kind == "ping":
            await self._send({"type": "pong"})
        elif kind == "pong":
            return
        elif kind == "auth":
            await self._send(frames.error("Already authenticated"))
        else:
            seq = message.get("seq") if isinstance(message.get("seq"), int) else None
            expected = ", ".join(sorted(INGEST_TYPES | {"ping", "pong"}))
            await self._send(
                frames.error(f"Unknown frame type {kind!r}: expected one of {expected}", seq=seq)
            )

    async def _store_inbox(self, ingestor: StreamIngestor, agent: AgentLink | None) -> None:
        while True:
            first = await self._inbox.get()
            if first is None:
                return
            batch = [first]
            finished = False
            while len(batch) < MAX_BATCH and not self._inbox.empty():
                message = self._inbox.get_nowait()
                if message is None:
                    finished = True
                    break
                batch.append(message)
            try:
                await self._store(ingestor, batch, agent)
            except Exception:
                log.exception("stream batch failed")
            if finished:
                return

    async def _store(
        self, ingestor: StreamIngestor, batch: list[dict[str, Any]], agent: AgentLink | None
    ) -> None:
        parsed = []
        for message in batch:
            try:
                parsed.append(parse_frame(message))
            except FrameError as exc:
                await self._send(frames.error(exc.message, seq=exc.seq))
        if not parsed:
            return
        outcomes = await ingestor.ingest(parsed)
        for outcome in outcomes:
            if outcome.error is None:
                await self._send(frames.ack(outcome.frame.seq, outcome.frame.data_id))
            else:
                await self._send(frames.error(outcome.error, seq=outcome.frame.seq))
        if agent is not None:
            await self._agents.add_functions(agent, _started_trace_names(outcomes))

    async def _keep_alive(self, reader: asyncio.Task[None], agent: AgentLink | None) -> None:
        interval = self._settings.stream_ping_interval_s
        while True:
            await asyncio.sleep(interval)
            silent_for = time.monotonic() - self._last_heard
            if silent_for > interval * STALE_AFTER_PINGS:
                log.info("closing a stream silent for %.0fs", silent_for)
                await self._refuse(f"No frame or pong for {silent_for:.0f}s: closing", IDLE_CLOSE)
                reader.cancel()
                return
            await self._send({"type": "ping"})
            if agent is not None:
                try:
                    await self._agents.heartbeat(agent)
                except Exception:
                    log.exception("agent heartbeat failed")

    async def _deliver_commands(self, agent: AgentLink) -> None:
        poll_s = self._settings.stream_command_poll_s
        while self._open:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(agent.wake.wait(), poll_s)
            try:
                commands = await self._agents.take_commands(agent)
            except Exception:
                log.exception("could not read commands for agent %s", agent.id)
                continue
            for command in commands:
                await self._send(command)

    async def _send(self, frame: dict[str, Any]) -> None:
        if not self._open:
            return
        try:
            async with self._send_lock:
                await self._ws.send_text(dumps(frame).decode())
        except Exception:
            self._open = False


def _started_trace_names(outcomes: list[Outcome]) -> set[str]:
    return {
        o.frame.data.name
        for o in outcomes
        if o.stored and isinstance(o.frame.data, TraceStarted) and o.frame.data.name
    }
