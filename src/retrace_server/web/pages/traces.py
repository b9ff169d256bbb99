"""A run: `/traces/{id}` (tree, timeline and span panel), forking from a span, and sharing it."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from pydantic import ValidationError
from starlette.responses import RedirectResponse, Response

from retrace_server.config import Settings
from retrace_server.errors import ApiError, describe_validation_errors
from retrace_server.forks import agent_replay, replay
from retrace_server.forks import service as forks
from retrace_server.forks.schemas import ForkCreate, ReplayRequest
from retrace_server.jsonutil import JsonResponse
from retrace_server.pagination import Page
from retrace_server.tapes import service as tapes
from retrace_server.tapes.redaction import MAX_CUSTOM_PATTERNS
from retrace_server.tapes.schemas import TapeCreate
from retrace_server.traces import service as traces
from retrace_server.web.auth import SessionDep, check_csrf_header, checked_form
from retrace_server.web.templating import page_with_data, render

router = APIRouter(include_in_schema=False)

SECRET_KINDS = {
    "openai_key": "OpenAI API key",
    "anthropic_key": "Anthropic API key",
    "retrace_key": "Retrace API key",
    "aws_access_key": "AWS access key",
    "aws_secret_key": "AWS secret key",
    "github_token": "GitHub token",
    "jwt": "JSON Web Token",
    "bearer_token": "Bearer token",
    "basic_auth": "Basic auth credentials",
    "private_key": "Private key",
    "url_credentials": "Password in a URL",
    "secret_field": "Value of a secret-named field",
    "custom": "Match of your own patterns",
}


@router.get("/traces/{trace_id}")
async def trace_page(trace_id: str, request: Request, signed_in: SessionDep) -> Response:
    db = request.app.state.db
    data = await traces.get_json(db, user_id=signed_in.user.id, trace_id=trace_id)
    # The head's golden mark, verdict and broken policies, without decoding every span.
    checks = orjson.loads(
        await traces.get_json(db, user_id=signed_in.user.id, trace_id=trace_id, spans=False)
    )
    trace_forks, fork_total = await forks.list_forks(
        db, user_id=signed_in.user.id, trace_id=trace_id, page=Page(limit=5, offset=0)
    )
    return page_with_data(
        request,
        "trace.html",
        data=data,
        trace_id=trace_id,
        checks=checks,
        forks=trace_forks,
        fork_total=fork_total,
    )


def _parse_fork(body: Any) -> ForkCreate:
    try:
        return ForkCreate.model_validate(body)
    except ValidationError as exc:
        raise ApiError(400, describe_validation_errors(exc.errors())) from None


@router.post("/_/forks")
async def fork_and_replay(request: Request, signed_in: SessionDep) -> JsonResponse:
    """Forks a run at a span with the reader's changes and starts replaying it; the page then
    opens the fork, which follows the replay live."""
    check_csrf_header(request, signed_in)
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "The body must be JSON") from None
    payload = _parse_fork(body)
    db = request.app.state.db
    user_id = signed_in.user.id
    fork = await forks.create(db, user_id=user_id, payload=payload)
    await start_replay(request, user_id=user_id, fork_id=fork["id"])
    return JsonResponse({"id": fork["id"], "url": f"/forks/{fork['id']}"}, status_code=201)


async def start_replay(request: Request, *, user_id: str, fork_id: str) -> None:
    """As `POST /api/v1/forks/{id}/replay` with `mode: auto`, without waiting for the end."""
    overrides = ReplayRequest()
    started = await agent_replay.replay_through_agent(
        request.app, user_id=user_id, fork_id=fork_id, overrides=overrides, mode="auto", wait_s=0
    )
    if started is None:
        settings: Settings = request.app.state.settings
        await replay.run(
            request.app.state.ingest,
            settings,
            request.app.state.fork_runner,
            user_id=user_id,
            fork_id=fork_id,
            overrides=overrides,
            wait_s=0,
        )


def _patterns(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()][: MAX_CUSTOM_PATTERNS + 1]


@router.get("/traces/{trace_id}/share")
async def share_page(
    trace_id: str,
    request: Request,
    signed_in: SessionDep,
    patterns: Annotated[str, Query(max_length=20_000)] = "",
) -> Response:
    db = request.app.state.db
    trace = await traces.get(db, user_id=signed_in.user.id, trace_id=trace_id, spans=False)
    counts = await tapes.preview_redactions(
        db, user_id=signed_in.user.id, trace_id=trace_id, redact_patterns=_patterns(patterns)
    )
    return render(
        request,
        "share.html",
        trace={"trace_id": trace_id, "name": trace["name"], "span_count": trace["span_count"]},
        preview=sorted(counts.items(), key=lambda item: -item[1]),
        preview_total=sum(counts.values()),
        patterns=patterns,
        kinds=SECRET_KINDS,
    )


@router.post("/traces/{trace_id}/share")
async def publish(trace_id: str, request: Request, signed_in: SessionDep) -> Response:
    fields = await checked_form(request, signed_in)
    settings: Settings = request.app.state.settings
    try:
        payload = TapeCreate.model_validate(
            {
                "trace_id": trace_id,
                "title": fields.get("title", "").strip() or None,
                "description": fields.get("description", "").strip() or None,
                "visibility": fields.get("visibility", "public"),
                "redact": fields.get("redact") == "on",
                "redact_patterns": _patterns(fields.get("patterns", "")),
            }
        )
    except ValidationError as exc:
        raise ApiError(400, describe_validation_errors(exc.errors())) from None
    tape = await tapes.create(
        request.app.state.db, user_id=signed_in.user.id, payload=payload, public_url=settings.public_url
    )
    return RedirectResponse(f"/tapes?published={tape['slug']}", status_code=303)
