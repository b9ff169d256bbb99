from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from retrace_server.auth.dependencies import UserDep
from retrace_server.body import body_schema, parse_body
from retrace_server.deps import DbDep, SettingsDep
from retrace_server.enforcement import quota
from retrace_server.jsonutil import JsonResponse, list_envelope
from retrace_server.pagination import PageDep
from retrace_server.stream import cascade
from retrace_server.traces import service
from retrace_server.traces.schemas import TraceCreate, TraceFilters, TraceStatus, TraceUpdate, UtcTimestamp

router = APIRouter(prefix="/api/v1/traces", tags=["traces"])

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid body or parameters"},
    401: {"description": "Missing or invalid credentials"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such trace for this user"}}


@router.post(
    "",
    status_code=201,
    summary="Create a trace with optional batch spans",
    responses={
        **ERRORS,
        402: {"description": "The plan's monthly trace limit is reached"},
        409: {"description": "A trace with this id exists"},
        413: {},
        415: {},
    },
    openapi_extra=body_schema(TraceCreate),
)
async def create_trace(request: Request, user: UserDep, db: DbDep, settings: SettingsDep) -> JsonResponse:
    payload = await parse_body(request, TraceCreate)
    await quota.admit_trace(db, settings=settings, user_id=user.id, tier=user.tier, trace_id=payload.id)
    on_stored = cascade.agent_result_hook(payload, user_id=user.id)
    trace = await service.create(db, user_id=user.id, payload=payload, on_stored=on_stored)
    return JsonResponse(trace, status_code=201)


@router.patch(
    "/{trace_id}",
    summary="Finish a trace or append spans to it",
    responses={**ERRORS, **NOT_FOUND, 413: {}, 415: {}},
    openapi_extra=body_schema(TraceUpdate),
)
async def update_trace(trace_id: str, request: Request, user: UserDep, db: DbDep) -> JsonResponse:
    payload = await parse_body(request, TraceUpdate)
    trace = await service.update_trace(db, user_id=user.id, trace_id=trace_id, payload=payload)
    return JsonResponse(trace)


@router.get("", summary="List traces, newest first", responses=ERRORS)
async def list_traces(
    user: UserDep,
    db: DbDep,
    page: PageDep,
    status: Annotated[TraceStatus | None, Query(description="running | completed | failed")] = None,
    session_id: Annotated[str | None, Query(max_length=256)] = None,
    name: Annotated[str | None, Query(max_length=512, description="Substring of the trace name")] = None,
    since: Annotated[UtcTimestamp | None, Query(description="Started at or after (ISO 8601)")] = None,
    until: Annotated[UtcTimestamp | None, Query(description="Started before (ISO 8601)")] = None,
) -> JsonResponse:
    filters = TraceFilters(status=status, session_id=session_id, name=name, since=since, until=until)
    data, total = await service.list_traces(db, user_id=user.id, filters=filters, page=page)
    return JsonResponse(list_envelope(data, total=total, limit=page.limit, offset=page.offset))


@router.get("/{trace_id}", summary="Get a trace with all its spans", responses={**ERRORS, **NOT_FOUND})
async def get_trace(trace_id: str, user: UserDep, db: DbDep) -> Response:
    body = await service.get_json(db, user_id=user.id, trace_id=trace_id)
    return Response(body, media_type="application/json")


@router.delete(
    "/{trace_id}", status_code=204, summary="Delete a trace and its spans", responses={**ERRORS, **NOT_FOUND}
)
async def delete_trace(trace_id: str, user: UserDep, db: DbDep) -> Response:
    await service.delete_trace(db, user_id=user.id, trace_id=trace_id)
    return Response(status_code=204)
