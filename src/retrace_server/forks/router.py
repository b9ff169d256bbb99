from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from retrace_server.auth.dependencies import UserDep
from retrace_server.body import body_schema, parse_body
from retrace_server.deps import DbDep, SettingsDep
from retrace_server.forks import agent_replay, replay, service
from retrace_server.forks.runner import ReplayRunner
from retrace_server.forks.schemas import ClaimRequest, ForkCreate, ReplayRequest
from retrace_server.jsonutil import JsonResponse, list_envelope
from retrace_server.pagination import PageDep

router = APIRouter(prefix="/api/v1/forks", tags=["forks"])

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid body or parameters"},
    401: {"description": "Missing or invalid credentials"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such fork for this user"}}
BODY: dict[int | str, dict[str, Any]] = {
    413: {"description": "Body too large"},
    415: {"description": "Not JSON"},
}


@router.post(
    "",
    status_code=201,
    summary="Fork a trace at one of its spans",
    responses={**ERRORS, 404: {"description": "No such trace, or the span is not in it"}, **BODY},
    openapi_extra=body_schema(ForkCreate),
)
async def create_fork(request: Request, user: UserDep, db: DbDep) -> JsonResponse:
    payload = await parse_body(request, ForkCreate)
    return JsonResponse(await service.create(db, user_id=user.id, payload=payload), status_code=201)


@router.get("", summary="List forks, newest first", responses=ERRORS)
async def list_forks(
    user: UserDep,
    db: DbDep,
    page: PageDep,
    trace_id: Annotated[str | None, Query(max_length=128, description="Only forks of this trace")] = None,
) -> JsonResponse:
    data, total = await service.list_forks(db, user_id=user.id, trace_id=trace_id, page=page)
    return JsonResponse(list_envelope(data, total=total, limit=page.limit, offset=page.offset))


@router.get(
    "/{fork_id}", summary="Get a fork with the history of its replays", responses={**ERRORS, **NOT_FOUND}
)
async def get_fork(fork_id: str, user: UserDep, db: DbDep) -> JsonResponse:
    return JsonResponse(await service.get(db, user_id=user.id, fork_id=fork_id))


@router.post(
    "/{fork_id}/replay",
    summary="Replay the fork (optionally with other changes) into a new trace",
    responses={
        **ERRORS,
        **NOT_FOUND,
        **BODY,
        202: {"description": "Still running after RETRACE_REPLAY_WAIT_S; it finishes in the background"},
        409: {
            "description": "The fork is already replaying, its fork point is gone, "
            "or `mode: agent` and no agent is connected for the trace"
        },
    },
    openapi_extra=body_schema(ReplayRequest, required=False),
)
async def replay_fork(
    fork_id: str, request: Request, user: UserDep, db: DbDep, settings: SettingsDep
) -> JsonResponse:
    overrides = await parse_body(request, ReplayRequest, required=False)
    if overrides.mode != "server":
        through_agent = await agent_replay.replay_through_agent(
            request.app, user_id=user.id, fork_id=fork_id, overrides=overrides, mode=overrides.mode
        )
        if through_agent is not None:
            finished, fork = through_agent
            return JsonResponse(fork, status_code=200 if finished else 202)
    runner: ReplayRunner = request.app.state.fork_runner
    finished, fork = await replay.run(
        request.app.state.ingest, settings, runner, user_id=user.id, fork_id=fork_id, overrides=overrides
    )
    return JsonResponse(fork, status_code=200 if finished else 202)


@router.post(
    "/{fork_id}/replay/claim",
    summary="Claim the current execution of a fork (a live agent replaying it)",
    responses={**ERRORS, **NOT_FOUND, **BODY, 409: {"description": "Not the current execution"}},
    openapi_extra=body_schema(ClaimRequest),
)
async def claim_execution(fork_id: str, request: Request, user: UserDep, db: DbDep) -> JsonResponse:
    payload = await parse_body(request, ClaimRequest)
    return JsonResponse(
        await service.claim(db, user_id=user.id, fork_id=fork_id, execution_id=payload.execution_id)
    )


@router.get(
    "/{fork_id}/diff",
    summary="Diff the original trace against the latest replay",
    responses={**ERRORS, **NOT_FOUND, 409: {"description": "The fork has not been replayed"}},
)
async def diff_fork(fork_id: str, user: UserDep, db: DbDep) -> JsonResponse:
    return JsonResponse(await service.get_diff(db, user_id=user.id, fork_id=fork_id))
