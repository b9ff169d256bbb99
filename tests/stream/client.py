"""A raw WebSocket client of `/ws/v1/stream`, speaking the protocol frame by frame."""

from __future__ import annotations

import json
import struct
from typing import Any

import websocket


class StreamClient:
    def __init__(self, server_url: str) -> None:
        self.ws = websocket.create_connection(
            server_url.replace("http://", "ws://") + "/ws/v1/stream", timeout=30, suppress_origin=True
        )
        self.seq = 0

    def send(self, frame: dict[str, Any] | str) -> None:
        self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    def frame(self, kind: str, data: dict[str, Any]) -> int:
        self.seq += 1
        self.send({"type": kind, "data": data, "seq": self.seq})
        return self.seq

    def receive(self) -> dict[str, Any]:
        """The next frame other than a server ping."""
        while True:
            message: dict[str, Any] = json.loads(self.ws.recv())
            if message["type"] != "ping":
                return message

    def auth(self, key: str, **extra: Any) -> dict[str, Any]:
        self.send(
            {
                "type": "auth",
                "api_key": key,
                "acks": True,
                "resumable": False,
                "replay_generation": 1,
                **extra,
            }
        )
        return self.receive()

    def close_code(self) -> int:
        """Reads until the server closes the connection; its close code."""
        while True:
            opcode, data = self.ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                code: int = struct.unpack("!H", data[:2])[0]
                return code

    def close(self) -> None:
        self.ws.close()
