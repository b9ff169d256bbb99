"""The web interface: server-rendered pages with small scripts, served by `retrace-server serve`."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from retrace_server.web.errors import error_page
from retrace_server.web.pages import (
    baselines,
    forks,
    guardrails,
    memory,
    runs,
    settings,
    signin,
    skills,
    tapes,
    traces,
)
from retrace_server.web.security import SecurityHeadersMiddleware
from retrace_server.web.templating import STATIC_DIR


def install_web(app: FastAPI) -> None:
    app.state.error_page = error_page
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for page in (signin, runs, traces, baselines, forks, tapes, memory, skills, settings, guardrails):
        app.include_router(page.router)
    app.add_middleware(SecurityHeadersMiddleware)
