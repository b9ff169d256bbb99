"""The ceiling of bench/otlp.py: the server's own application and HTTP stack with one more route,
`POST /bench/noop`, which authenticates, reads the export and answers success without storing it.

uvicorn otlp_noop_app:create --factory --app-dir bench
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response

from retrace_server.app import create_app
from retrace_server.auth.dependencies import UserDep
from retrace_server.config import Settings
from retrace_server.otlp.responses import trace_response

NOOP_PATH = "/bench/noop"


def create() -> FastAPI:
    app = create_app(Settings())

    @app.post(NOOP_PATH, include_in_schema=False)
    async def noop(request: Request, user: UserDep) -> Response:
        await request.body()
        return trace_response("protobuf", rejected=0, message="")

    return app
