"""The ceiling of bench/otlp.py: the server's own application and HTTP stack, with `POST /v1/traces`
answered by a route that authenticates, reads the export and answers success without decoding or
storing it.

uvicorn otlp_noop_app:create --factory --app-dir bench
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute

from retrace_server.app import create_app
from retrace_server.auth.dependencies import UserDep
from retrace_server.config import Settings
from retrace_server.otlp.responses import trace_response
from retrace_server.otlp.router import TRACES_PATH


def create() -> FastAPI:
    app = create_app(Settings())
    app.router.routes = [
        route
        for route in app.router.routes
        if not (isinstance(route, APIRoute) and route.path == TRACES_PATH)
    ]

    @app.post(TRACES_PATH, include_in_schema=False)
    async def noop(request: Request, user: UserDep) -> Response:
        await request.body()
        return trace_response("protobuf", rejected=0, message="")

    return app
