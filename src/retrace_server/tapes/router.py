from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from retrace_server.auth.dependencies import CurrentUser, UserDep, authenticate
from retrace_server.body import body_schema, parse_body
from retrace_server.deps import DbDep, SettingsDep
from retrace_server.errors import ApiError
from retrace_server.jsonutil import JsonResponse, list_envelope
from retrace_server.openapi import error_responses
from retrace_server.pagination import PageDep
from retrace_server.ratelimit import ip_rate_limit
from retrace_server.tapes import service
from retrace_server.tapes.schemas import TapeCreate, TapePreviewRequest, TapeRedactionPreview

router = APIRouter(prefix="/api/v1/tapes", tags=["tapes"])

BAD_REQUEST: dict[int | str, dict[str, Any]] = {400: {"description": "Invalid body or parameters"}}
UNAUTHORIZED: dict[int | str, dict[str, Any]] = {401: {"description": "Missing or invalid credentials"}}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such tape"}}
RATE_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {"description": "Too many reads from this user or address"}
}


async def public_reader(request: Request) -> CurrentUser | None:
    """The caller when credentials were sent (limited per user); else None, limited per client IP."""
    user = await authenticate(request)
    if user is None:
        await ip_rate_limit(request)
    return user


ReaderDep = Annotated[CurrentUser | None, Depends(public_reader)]


@router.post(
    "",
    status_code=201,
    summary="Publish a redacted, frozen snapshot of a trace",
    responses={
        **BAD_REQUEST,
        **UNAUTHORIZED,
        404: {"description": "No such trace for this user"},
        413: {},
        415: {},
    },
    openapi_extra=body_schema(TapeCreate),
)
async def create_tape(request: Request, user: UserDep, db: DbDep, settings: SettingsDep) -> JsonResponse:
    payload = await parse_body(request, TapeCreate)
    tape = await service.create(db, user_id=user.id, payload=payload, public_url=settings.public_url)
    return JsonResponse(tape, status_code=201)


@router.post(
    "/preview",
    summary="Count what publishing a trace would redact, without publishing it",
    description=(
        "Runs the redaction `POST /api/v1/tapes` would run over the trace and its spans and answers "
        "how many values it would replace, per kind. Nothing is stored."
    ),
    response_model=TapeRedactionPreview,
    responses=error_responses(400, 401, 404, 413, 415, 429, e404="No such trace for this user"),
    openapi_extra=body_schema(TapePreviewRequest),
)
async def preview_tape(request: Request, user: UserDep, db: DbDep) -> JsonResponse:
    payload = await parse_body(request, TapePreviewRequest)
    redactions = await service.preview_redactions(
        db, user_id=user.id, trace_id=payload.trace_id, redact_patterns=payload.redact_patterns
    )
    preview = TapeRedactionPreview(redacted_count=sum(redactions.values()), redactions=redactions)
    return JsonResponse(preview.model_dump())


@router.get(
    "",
    summary="List public tapes (or your own with mine=true), newest first",
    responses={
        **BAD_REQUEST,
        401: {"description": "Invalid credentials, or mine=true without any"},
        **RATE_LIMITED,
    },
)
async def list_tapes(
    reader: ReaderDep,
    db: DbDep,
    settings: SettingsDep,
    page: PageDep,
    mine: Annotated[
        bool, Query(description="Your own tapes, public and unlisted (needs credentials)")
    ] = False,
) -> JsonResponse:
    owner_id = None
    if mine:
        if reader is None:
            raise ApiError(
                401, "mine=true needs credentials: send `x-retrace-key` or `Authorization: Bearer <jwt>`"
            )
        owner_id = reader.id
    data, total = await service.list_tapes(db, page=page, public_url=settings.public_url, owner_id=owner_id)
    return JsonResponse(list_envelope(data, total=total, limit=page.limit, offset=page.offset))


@router.get(
    "/{slug}",
    summary="Get a tape with its spans (public, no credentials)",
    responses={**NOT_FOUND, 401: {"description": "Invalid credentials (none are needed)"}, **RATE_LIMITED},
    dependencies=[Depends(public_reader)],
)
async def get_tape(slug: str, db: DbDep, settings: SettingsDep) -> JsonResponse:
    return JsonResponse(await service.get(db, slug=slug, public_url=settings.public_url))


@router.delete(
    "/{slug}",
    status_code=204,
    summary="Remove one of your tapes",
    responses={**UNAUTHORIZED, 404: {"description": "No such tape of this user"}},
)
async def delete_tape(slug: str, user: UserDep, db: DbDep) -> Response:
    await service.delete_tape(db, user_id=user.id, slug=slug)
    return Response(status_code=204)
