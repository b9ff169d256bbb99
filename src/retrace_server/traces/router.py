from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from retrace_server.auth.dependencies import UserDep
from retrace_server.body import body_schema, parse_body
from retrace_server.deps import DbDep
from retrace_server.ingest.dependencies import IngestDep
from retrace_server.jsonutil import JsonResponse, list_envelope
from retrace_server.openapi import error_responses
from retrace_server.pagination import PageDep
from retrace_server.schemas import ListPage
from retrace_server.traces import service
from retrace_server.traces.schemas import (
    RegressionVerdict,
    TraceCreate,
    TraceFilters,
    TraceListItem,
    TraceOut,
    TraceStatus,
    TraceUpdate,
    TraceWithSpans,
    UtcTimestamp,
)

router = APIRouter(prefix="/api/v1/traces", tags=["traces"])


@router.post(
    "",
    status_code=201,
    summary="Create a trace with optional batch spans",
    response_model=TraceOut,
    responses=error_responses(
        400, 401, 402, 409, 413, 415, 429, e409="You already have a trace with this id"
    ),
    openapi_extra=body_schema(TraceCreate),
)
async def create_trace(request: Request, user: UserDep, ingest: IngestDep) -> JsonResponse:
    payload = await parse_body(request, TraceCreate)
    trace = await service.create(ingest, user_id=user.id, tier=user.tier, payload=payload)
    return JsonResponse(trace, status_code=201)


@router.patch(
    "/{trace_id}",
    summary="Finish a trace or append spans to it",
    response_model=TraceOut,
    responses=error_responses(400, 401, 404, 413, 415, 429),
    openapi_extra=body_schema(TraceUpdate),
)
async def update_trace(trace_id: str, request: Request, user: UserDep, ingest: IngestDep) -> JsonResponse:
    payload = await parse_body(request, TraceUpdate)
    trace = await service.update(ingest, user_id=user.id, trace_id=trace_id, payload=payload)
    return JsonResponse(trace)


@router.get(
    "",
    summary="List traces, newest first",
    response_model=ListPage[TraceListItem],
    responses=error_responses(400, 401, 429),
)
async def list_traces(
    user: UserDep,
    db: DbDep,
    page: PageDep,
    status: Annotated[TraceStatus | None, Query(description="running | completed | failed")] = None,
    session_id: Annotated[str | None, Query(max_length=256)] = None,
    project_id: Annotated[str | None, Query(max_length=256)] = None,
    name: Annotated[str | None, Query(max_length=512, description="Substring of the trace name")] = None,
    since: Annotated[UtcTimestamp | None, Query(description="Started at or after (ISO 8601)")] = None,
    until: Annotated[UtcTimestamp | None, Query(description="Started before (ISO 8601)")] = None,
    golden: Annotated[
        bool | None, Query(description="true: golden baselines only; false: every other trace")
    ] = None,
    regression: Annotated[
        RegressionVerdict | None,
        Query(description="Runs whose comparison with their baseline gave this verdict"),
    ] = None,
) -> JsonResponse:
    filters = TraceFilters(
        status=status,
        session_id=session_id,
        project_id=project_id,
        name=name,
        since=since,
        until=until,
        golden=golden,
        regression=regression,
    )
    data, total = await service.list(db, user_id=user.id, filters=filters, page=page)
    return JsonResponse(list_envelope(data, total=total, limit=page.limit, offset=page.offset))


@router.get(
    "/{trace_id}",
    summary="Get a trace with all its spans",
    response_model=TraceWithSpans,
    responses=error_responses(401, 404, 429),
)
async def get_trace(trace_id: str, user: UserDep, db: DbDep) -> Response:
    body = await service.get_json(db, user_id=user.id, trace_id=trace_id)
    return Response(body, media_type="application/json")


@router.delete(
    "/{trace_id}",
    status_code=204,
    summary="Delete a trace and its spans",
    responses=error_responses(401, 404, 429),
)
async def delete_trace(trace_id: str, user: UserDep, ingest: IngestDep) -> Response:
    await service.delete(ingest, user_id=user.id, trace_id=trace_id)
    return Response(status_code=204)
