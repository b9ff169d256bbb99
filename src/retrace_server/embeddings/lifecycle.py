"""Starts and stops what semantic search needs in a serving process."""

from __future__ import annotations

from fastapi import FastAPI

from retrace_server.config import Settings
from retrace_server.embeddings.service import EmbeddingService
from retrace_server.embeddings.worker import BackgroundIndexer


async def start_embeddings(app: FastAPI, settings: Settings) -> None:
    app.state.embeddings = EmbeddingService(settings, yield_to_requests=True)
    app.state.indexer = None
    if settings.indexer_enabled and app.state.embeddings.enabled:
        app.state.indexer = BackgroundIndexer(app.state.db, app.state.embeddings)
        app.state.indexer.start()


async def stop_embeddings(app: FastAPI) -> None:
    if app.state.indexer is not None:
        await app.state.indexer.stop()
    app.state.embeddings.close()
