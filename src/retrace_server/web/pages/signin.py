"""Sign in by pasting an API key (or a Clerk session JWT when the server verifies JWTs); sign out."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from retrace_server.auth.dependencies import CurrentUser, user_from_api_key, user_from_jwt
from retrace_server.auth.keys import hash_key
from retrace_server.config import Settings
from retrace_server.db.engine import Database
from retrace_server.errors import ApiError, DomainError
from retrace_server.ratelimit import count_failed_authentication
from retrace_server.web import sessions
from retrace_server.web.auth import (
    SESSION_COOKIE,
    OptionalSessionDep,
    check_csrf,
    clear_session_cookie,
    form_fields,
    local_path,
    same_origin,
    set_session_cookie,
)
from retrace_server.web.templating import render

router = APIRouter(include_in_schema=False)


def _jwt_enabled(settings: Settings) -> bool:
    return bool(settings.jwt_public_key or settings.jwt_jwks_url)


def _sign_in_page(
    request: Request, *, next_path: str, error: str | None = None, status: int = 200
) -> Response:
    settings: Settings = request.app.state.settings
    return render(
        request,
        "signin.html",
        status=status,
        next_path=next_path,
        error=error,
        jwt_enabled=_jwt_enabled(settings),
    )


@router.get("/signin")
async def sign_in_form(request: Request, signed_in: OptionalSessionDep, next: str | None = None) -> Response:
    next_path = local_path(next)
    if signed_in is not None:
        return RedirectResponse(next_path, status_code=303)
    return _sign_in_page(request, next_path=next_path)


@router.post("/signin")
async def sign_in(request: Request) -> Response:
    fields = await form_fields(request)
    next_path = local_path(fields.get("next"))
    if not same_origin(request):
        raise ApiError(403, "Sign in from this site's own sign-in page")
    settings: Settings = request.app.state.settings
    db: Database = request.app.state.db
    key = fields.get("api_key", "").strip()
    token = fields.get("jwt", "").strip()
    if not key and not token:
        return _sign_in_page(request, next_path=next_path, error="Paste your API key to sign in.", status=400)
    user: CurrentUser | None
    if key:
        user = await user_from_api_key(db, key)
        failure = "That API key is not valid (it may have been revoked or rotated)."
    elif _jwt_enabled(settings):
        try:
            user = await user_from_jwt(request, token)
        except DomainError as exc:
            user, failure = None, f"That token was refused: {exc.message}"
    else:
        user, failure = None, "This server does not accept session tokens; sign in with an API key."
    if user is None:
        # Failures count against the address; past its budget they are refused more slowly.
        too_many = await count_failed_authentication(request)
        if too_many is not None:
            return _sign_in_page(request, next_path=next_path, error=too_many.message, status=429)
        return _sign_in_page(request, next_path=next_path, error=failure, status=401)
    cookie_token, _ = await sessions.create(
        db,
        user=user,
        api_key_hash=hash_key(key) if key else None,
        lifetime=timedelta(hours=settings.web_session_hours),
    )
    response = RedirectResponse(next_path, status_code=303)
    set_session_cookie(response, request, cookie_token, settings)
    return response


@router.post("/signout")
async def sign_out(request: Request, signed_in: OptionalSessionDep) -> Response:
    fields = await form_fields(request)
    response = RedirectResponse("/signin", status_code=303)
    if signed_in is not None:
        check_csrf(request, signed_in, fields.get("csrf_token"))
        token = request.cookies.get(SESSION_COOKIE, "")
        await sessions.delete_session(request.app.state.db, token=token)
    clear_session_cookie(response, request)
    return response
