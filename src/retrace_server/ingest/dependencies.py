from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from retrace_server.ingest.service import Ingestor


async def get_ingestor(request: Request) -> Ingestor:
    ingestor: Ingestor = request.app.state.ingest
    return ingestor


IngestDep = Annotated[Ingestor, Depends(get_ingestor)]
