"""The ceiling a benchmark compares the server with: FastAPI on the same uvicorn stack (uvloop,
httptools, one process) with routes that only read the request and answer, so any figure the
server reaches is a share of what this machine's HTTP stack can carry at all.

    python bench/_ceiling.py --port 8123
"""

from __future__ import annotations

import argparse
import uuid

import uvicorn
from fastapi import FastAPI, Request, Response, WebSocket, WebSocketDisconnect

app = FastAPI()


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/{path:path}")
async def accept(path: str, request: Request) -> Response:
    await request.body()
    return Response(
        b'{"id":"%s"}' % uuid.uuid4().hex.encode(), status_code=201, media_type="application/json"
    )


@app.websocket("/ws/v1/stream")
async def stream(websocket: WebSocket) -> None:
    """Acknowledges every frame at once, as the stream does once a frame is stored."""
    await websocket.accept()
    try:
        while True:
            await websocket.receive_text()
            await websocket.send_text('{"type": "ack"}')
    except WebSocketDisconnect:
        return


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )
