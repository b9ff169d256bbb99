"""`/ws/v1/stream`: the official SDK's live transport (see connection.py for the protocol)."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from retrace_server.stream.connection import StreamConnection

router = APIRouter(tags=["stream"])


@router.websocket("/ws/v1/stream")
async def stream(websocket: WebSocket) -> None:
    """Authenticate with an `auth` frame, then stream trace and span frames, each acknowledged once stored."""
    await StreamConnection(websocket).serve()
