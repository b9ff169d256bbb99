"""Guardrail routes: policies, the SDK's check, holds, breaches and the plan quota."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, Response

from retrace_server.auth.dependencies import UserDep
from retrace_server.body import body_schema, parse_body
from retrace_server.db.engine import Database
from retrace_server.deps import DbDep, SettingsDep
from retrace_server.enforcement import holds, quota, service
from retrace_server.enforcement.schemas import (
    BreachOut,
    CheckRequest,
    CheckResult,
    HoldDecision,
    HoldOut,
    HoldStatus,
    PolicyCreate,
    PolicyKind,
    PolicyOut,
    QuotaOut,
)
from retrace_server.errors import InvalidInput
from retrace_server.jsonutil import JsonResponse, list_envelope
from retrace_server.openapi import error_responses
from retrace_server.pagination import PageDep
from retrace_server.schemas import ListPage

router = APIRouter(prefix="/api/v1/enforcement", tags=["enforcement"])


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        raise InvalidInput("Request body is required (JSON object)")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"Invalid JSON body: {exc}") from None


# First in the router: the SDK asks after every step, and routes match in order.
@router.post(
    "/check",
    summary="Count a run's step and answer allow, block or hold",
    description=(
        "Called by the official SDK after recording each step when `RETRACE_SERVER_ENFORCEMENT=true`. "
        "A fault on the server answers `allow` (the SDK's local limits still apply)."
    ),
    response_model=CheckResult,
    responses=error_responses(400, 401, 413, 415, 429),
    openapi_extra=body_schema(CheckRequest),
)
async def check(request: Request, user: UserDep, db: DbDep) -> JsonResponse:
    payload = await parse_body(request, CheckRequest)
    return JsonResponse(await service.check(db, user_id=user.id, request=payload))


@router.post(
    "/policies",
    status_code=201,
    summary="Create a guardrail policy",
    response_model=PolicyOut,
    responses=error_responses(400, 401, 413, 415, 429),
    openapi_extra=body_schema(PolicyCreate),
)
async def create_policy(request: Request, user: UserDep, db: DbDep) -> JsonResponse:
    policy = await service.create(db, user_id=user.id, document=await _json_body(request))
    return JsonResponse(policy, status_code=201)


@router.get(
    "/policies",
    summary="List guardrail policies in the order they apply",
    response_model=ListPage[PolicyOut],
    responses=error_responses(400, 401, 429),
)
async def list_policies(
    user: UserDep,
    db: DbDep,
    page: PageDep,
    kind: Annotated[PolicyKind | None, Query()] = None,
    enabled: Annotated[bool | None, Query()] = None,
    project_id: Annotated[str | None, Query(max_length=256)] = None,
) -> JsonResponse:
    data, total = await service.list_policies(
        db, user_id=user.id, page=page, kind=kind, enabled=enabled, project_id=project_id
    )
    return JsonResponse(list_envelope(data, total=total, limit=page.limit, offset=page.offset))


@router.get(
    "/policies/{policy_id}",
    summary="Get a guardrail policy",
    response_model=PolicyOut,
    responses=error_responses(401, 404, 429),
)
async def get_policy(policy_id: str, user: UserDep, db: DbDep) -> JsonResponse:
    return JsonResponse(await service.get(db, user_id=user.id, policy_id=policy_id))


@router.patch(
    "/policies/{policy_id}",
    summary="Change a guardrail policy (the fields named; null restores a default)",
    response_model=PolicyOut,
    responses=error_responses(400, 401, 404, 413, 415, 429),
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
    },
)
async def update_policy(policy_id: str, request: Request, user: UserDep, db: DbDep) -> JsonResponse:
    changes = service.parse_changes(await _json_body(request))
    return JsonResponse(await service.update(db, user_id=user.id, policy_id=policy_id, changes=changes))


@router.delete(
    "/policies/{policy_id}",
    status_code=204,
    summary="Delete a guardrail policy",
    responses=error_responses(401, 404, 429),
)
async def delete_policy(policy_id: str, user: UserDep, db: DbDep) -> Response:
    await service.delete(db, user_id=user.id, policy_id=policy_id)
    return Response(status_code=204)


@router.get(
    "/holds",
    summary="List holds (actions waiting for a person), newest first",
    response_model=ListPage[HoldOut],
    responses=error_responses(400, 401, 429),
)
async def list_holds(
    user: UserDep,
    db: DbDep,
    page: PageDep,
    status: Annotated[HoldStatus | None, Query()] = None,
    run_id: Annotated[str | None, Query(max_length=128)] = None,
) -> JsonResponse:
    data, total = await holds.list_holds(db, user_id=user.id, page=page, status=status, run_id=run_id)
    return JsonResponse(list_envelope(data, total=total, limit=page.limit, offset=page.offset))


@router.get(
    "/holds/{hold_id}",
    summary="Get a hold and its status",
    response_model=HoldOut,
    responses=error_responses(401, 404, 429),
)
async def get_hold(hold_id: str, user: UserDep, db: DbDep) -> JsonResponse:
    return JsonResponse(await holds.get(db, user_id=user.id, hold_id=hold_id))


_HOLD_DECISION_ERRORS = error_responses(
    400, 401, 404, 409, 413, 415, 429, e409="The hold is already decided or expired"
)


async def _decide(
    hold_id: str, request: Request, *, user_id: str, db: Database, approve: bool
) -> JsonResponse:
    decision = await parse_body(request, HoldDecision, required=False)
    return JsonResponse(
        await holds.decide(db, user_id=user_id, hold_id=hold_id, approve=approve, note=decision.note)
    )


@router.post(
    "/holds/{hold_id}/approve",
    summary="Approve a pending hold: the held action goes ahead",
    response_model=HoldOut,
    responses=_HOLD_DECISION_ERRORS,
    openapi_extra=body_schema(HoldDecision, required=False),
)
async def approve_hold(hold_id: str, request: Request, user: UserDep, db: DbDep) -> JsonResponse:
    return await _decide(hold_id, request, user_id=user.id, db=db, approve=True)


@router.post(
    "/holds/{hold_id}/deny",
    summary="Deny a pending hold: the held action is blocked",
    response_model=HoldOut,
    responses=_HOLD_DECISION_ERRORS,
    openapi_extra=body_schema(HoldDecision, required=False),
)
async def deny_hold(hold_id: str, request: Request, user: UserDep, db: DbDep) -> JsonResponse:
    return await _decide(hold_id, request, user_id=user.id, db=db, approve=False)


@router.get(
    "/breaches",
    summary="Traces marked with the policies they broke, newest first",
    response_model=ListPage[BreachOut],
    responses=error_responses(400, 401, 429),
)
async def list_breaches(
    user: UserDep,
    db: DbDep,
    page: PageDep,
    trace_id: Annotated[str | None, Query(max_length=128)] = None,
    policy_id: Annotated[str | None, Query(max_length=36)] = None,
) -> JsonResponse:
    data, total = await service.list_breaches(
        db, user_id=user.id, page=page, trace_id=trace_id, policy_id=policy_id
    )
    return JsonResponse(list_envelope(data, total=total, limit=page.limit, offset=page.offset))


@router.get(
    "/quota",
    summary="This month's recorded traces against the plan's monthly limit",
    response_model=QuotaOut,
    responses=error_responses(401, 429),
)
async def get_quota(user: UserDep, db: DbDep, settings: SettingsDep) -> JsonResponse:
    return JsonResponse(await quota.get_usage(db, settings=settings, user_id=user.id, tier=user.tier))
