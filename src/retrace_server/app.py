"""The ASGI application. Nothing connects at import time; `create_app` wires one process."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from pydantic import Field

from retrace_server import __version__
from retrace_server.api_keys.router import router as api_keys_router
from retrace_server.apidocs import install_api_docs
from retrace_server.auth.dependencies import SECURITY_SCHEMES
from retrace_server.auth.jwt import JwtVerifier
from retrace_server.baselines import service as baselines_service
from retrace_server.baselines.router import router as baselines_router
from retrace_server.billing.router import router as billing_router
from retrace_server.config import Settings
from retrace_server.db.engine import Database
from retrace_server.embeddings.lifecycle import indexing_status, start_embeddings, stop_embeddings
from retrace_server.embeddings.schemas import IndexingStatus
from retrace_server.enforcement import quota
from retrace_server.enforcement import service as enforcement_service
from retrace_server.enforcement.router import router as enforcement_router
from retrace_server.errors import install_error_handlers
from retrace_server.forks import hooks as forks_hooks
from retrace_server.forks import service as forks_service
from retrace_server.forks.router import router as forks_router
from retrace_server.forks.runner import open_runner
from retrace_server.ingest import Ingestor
from retrace_server.internal.router import router as internal_router
from retrace_server.jsonutil import JsonResponse
from retrace_server.memory.router import router as memory_router
from retrace_server.middleware import RequestContextMiddleware
from retrace_server.openapi import install_openapi
from retrace_server.otlp import router as otlp_router
from retrace_server.pricing import price_table
from retrace_server.ratelimit.enforce import close_rate_limits, make_rate_limits
from retrace_server.schemas import Answer
from retrace_server.search import fts_index
from retrace_server.search.router import router as search_router
from retrace_server.skills.router import router as skills_router
from retrace_server.stream.agents import AgentRegistry
from retrace_server.stream.router import router as stream_router
from retrace_server.tapes.router import router as tapes_router
from retrace_server.traces.router import router as traces_router
from retrace_server.web import install_web

YOUNG_COLLECTION_THRESHOLD = 10_000


def _keep_startup_objects_out_of_collections() -> None:
    """A request allocates thousands of short-lived containers, which reference counting frees.
    At the default threshold the cycle collector ran every request or two, each time walking the
    objects the server keeps for good: 13% of the event loop's time while ingesting traces. Those
    objects are left out of collections from now on, which wait for 10,000 net new containers
    (what reference cycles leave behind). At 50,000 ingestion was no faster, and each collection
    paused the event loop five times longer (about 100 ms, against 10 to 13), a guardrail check
    waiting behind it."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, 10, 10)


class Health(Answer):
    status: str = Field(description="`ok` while the process serves requests")
    version: str = Field(description="The server's version")
    indexing: IndexingStatus | None = Field(
        None, description="Semantic indexing backlog, refreshed every few seconds; null without an embedder."
    )


def _ingestor(db: Database, settings: Settings) -> Ingestor:
    """The process's one writer of traces, with what higher domains do when a trace is stored."""
    ingestor = Ingestor(db, prices=price_table(settings.model_prices))
    ingestor.admission_hooks.append(quota.admission_hook(db, settings))
    ingestor.stored_hooks.append(forks_hooks.on_trace_stored)
    ingestor.committed_hooks.append(enforcement_service.backstop_hook(db))
    ingestor.committed_hooks.append(baselines_service.completion_hook(db, settings))
    return ingestor


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    baselines_service.register_trace_answers()
    enforcement_service.register_trace_answers()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.db = Database(settings)
        app.state.ingest = _ingestor(app.state.db, settings)
        full_text_indexer = fts_index.start(app.state.db)
        app.state.rate_limits = make_rate_limits(settings)
        app.state.fork_runner = await open_runner(app.state.db, app.state.ingest)
        app.state.stream_agents = AgentRegistry(
            app.state.db, settings, keep_replays_alive=forks_service.keep_replays_alive
        )
        await start_embeddings(app, settings)
        _keep_startup_objects_out_of_collections()
        try:
            yield
        finally:
            gc.unfreeze()
            await stop_embeddings(app)
            await app.state.fork_runner.shutdown()
            if full_text_indexer is not None:
                full_text_indexer.stop()
            await close_rate_limits(app.state.rate_limits)
            await app.state.db.dispose()

    app = FastAPI(
        title="Retrace server",
        version=__version__,
        description=(
            "Record, search, share, fork and replay AI-agent runs. Authenticate with an API key "
            "(`x-retrace-key`) or a Bearer JWT: the Authorize button takes either. Every failure "
            'answers `{"error": "..."}`. The live stream of the official SDK, the WebSocket '
            "`/ws/v1/stream`, is not an HTTP route; the README describes its frames."
        ),
        default_response_class=JsonResponse,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.jwt = JwtVerifier(settings)
    install_error_handlers(app)
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        own_body_paths=otlp_router.OWN_BODY_PATHS,
    )

    @app.get("/health", summary="Liveness probe", tags=["meta"], response_model=Health)
    async def health(request: Request) -> JsonResponse:
        status = Health(status="ok", version=__version__, indexing=indexing_status(request.app))
        return JsonResponse(status.model_dump(mode="json"))

    # Routes match in order, each candidate costing a few microseconds: the paths that agents
    # call on every step (ingest, the guardrail check, OTLP export) come first.
    app.include_router(traces_router)
    app.include_router(enforcement_router)
    app.include_router(otlp_router.router)
    app.include_router(baselines_router)
    app.include_router(api_keys_router)
    app.include_router(billing_router)
    app.include_router(tapes_router)
    app.include_router(skills_router)
    app.include_router(forks_router)
    app.include_router(search_router)
    app.include_router(memory_router)
    app.include_router(stream_router)
    app.include_router(internal_router)
    install_api_docs(app)
    install_openapi(app, security_schemes=SECURITY_SCHEMES)
    install_web(app)
    return app
