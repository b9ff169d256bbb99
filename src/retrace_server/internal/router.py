"""`/api/v1/internal/logs`: where the official SDK posts its own diagnostics unless telemetry is off.

The hosted service forwards those events to its analytics; a self-hosted server has no use for
them and keeps nothing, but answers 204 so that an SDK left with telemetry on logs no errors.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from retrace_server.openapi import error_responses
from retrace_server.ratelimit.enforce import ip_rate_limit

router = APIRouter(prefix="/api/v1/internal", tags=["internal"])


@router.post(
    "/logs",
    status_code=204,
    summary="Accept the SDK's diagnostic events and store nothing",
    responses=error_responses(413, 429),
    dependencies=[Depends(ip_rate_limit)],
)
async def sdk_logs() -> Response:
    return Response(status_code=204)
