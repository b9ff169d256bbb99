"""The ceiling of bench/otlp.py: the server's own application and HTTP stack, where `POST /v1/traces`
authenticates and reads the export as usual, then answers success without decoding or storing it.

uvicorn otlp_noop_app:create --factory --app-dir bench
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, Response

from retrace_server.app import create_app
from retrace_server.config import Settings
from retrace_server.otlp import router as otlp_router
from retrace_server.otlp.responses import trace_response


async def _read_and_answer(request: Request, *_args: Any) -> Response:
    await request.body()
    return trace_response("protobuf", rejected=0, message="")


def create() -> FastAPI:
    otlp_router._export_spans = _read_and_answer  # type: ignore[assignment]
    return create_app(Settings())
