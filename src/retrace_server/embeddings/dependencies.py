from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from retrace_server.embeddings.service import EmbeddingService


async def get_embeddings(request: Request) -> EmbeddingService:
    embeddings: EmbeddingService = request.app.state.embeddings
    return embeddings


EmbeddingsDep = Annotated[EmbeddingService, Depends(get_embeddings)]
