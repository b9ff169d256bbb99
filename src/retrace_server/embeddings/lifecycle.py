"""Starts and stops what semantic search needs in a serving process."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import FastAPI

from retrace_server.config import Settings
from retrace_server.embeddings.backlog import BacklogMonitor
from retrace_server.embeddings.schemas import IndexingStatus
from retrace_server.embeddings.service import EmbeddingService
from retrace_server.embeddings.worker import BackgroundIndexer


async def start_embeddings(app: FastAPI, settings: Settings) -> None:
    app.state.embeddings = EmbeddingService(settings, yield_to_requests=True)
    app.state.indexer = None
    app.state.index_backlog = None
    if not app.state.embeddings.enabled:
        return
    # Every process with an embedder watches the backlog, indexing or not (a separate worker may).
    app.state.index_backlog = BacklogMonitor(app.state.db)
    app.state.index_backlog_stop = asyncio.Event()
    app.state.index_backlog_task = asyncio.create_task(
        app.state.index_backlog.run(app.state.index_backlog_stop), name="retrace-index-backlog"
    )
    if settings.indexer_enabled:
        app.state.indexer = BackgroundIndexer(app.state.db, app.state.embeddings)
        app.state.indexer.start()


def indexing_status(app: FastAPI) -> IndexingStatus | None:
    """The backlog as last read (None without an embedder, or before the first read)."""
    monitor: BacklogMonitor | None = getattr(app.state, "index_backlog", None)
    return monitor.status() if monitor is not None else None


async def stop_embeddings(app: FastAPI) -> None:
    if app.state.indexer is not None:
        await app.state.indexer.stop()
    if app.state.index_backlog is not None:
        app.state.index_backlog_stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(app.state.index_backlog_task, timeout=10)
    app.state.embeddings.close()
