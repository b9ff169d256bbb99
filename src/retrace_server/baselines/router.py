"""Golden marks and regression comparisons, under the traces they belong to."""

from __future__ import annotations

from fastapi import APIRouter, Request

from retrace_server.auth.dependencies import UserDep
from retrace_server.baselines import service
from retrace_server.baselines.schemas import GoldenOut, GoldenRequest, RegressionReport
from retrace_server.body import body_schema, parse_body
from retrace_server.deps import DbDep, SettingsDep
from retrace_server.jsonutil import JsonResponse
from retrace_server.openapi import error_responses

router = APIRouter(prefix="/api/v1/traces", tags=["baselines"])


@router.post(
    "/{trace_id}/golden",
    summary="Mark or unmark a trace as the golden baseline of its name (and project)",
    response_model=GoldenOut,
    responses=error_responses(400, 401, 404, 413, 415, 429),
    openapi_extra=body_schema(GoldenRequest),
)
async def update_golden(trace_id: str, request: Request, user: UserDep, db: DbDep) -> JsonResponse:
    payload = await parse_body(request, GoldenRequest)
    return JsonResponse(
        await service.update_golden(db, user_id=user.id, trace_id=trace_id, golden=payload.golden)
    )


@router.get(
    "/{trace_id}/golden",
    summary="Whether a trace is a golden baseline",
    response_model=GoldenOut,
    responses=error_responses(401, 404, 429),
)
async def get_golden(trace_id: str, user: UserDep, db: DbDep) -> JsonResponse:
    return JsonResponse(await service.get_golden(db, user_id=user.id, trace_id=trace_id))


@router.get(
    "/{trace_id}/regression",
    summary="Compare a completed run with its golden baseline, step by step",
    response_model=RegressionReport,
    responses=error_responses(
        401, 404, 429, e404="No such trace, or it has no baseline to compare with (or is still running)"
    ),
)
async def get_regression(trace_id: str, user: UserDep, db: DbDep, settings: SettingsDep) -> JsonResponse:
    return JsonResponse(
        await service.get_regression(db, settings=settings, user_id=user.id, trace_id=trace_id)
    )
