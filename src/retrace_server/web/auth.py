"""Who is browsing: the session cookie, and the checks every state-changing request passes."""

from __future__ import annotations

import secrets
from typing import Annotated
from urllib.parse import parse_qsl, urlsplit

from fastapi import Depends, Request
from starlette.responses import Response

from retrace_server.config import Settings
from retrace_server.db.engine import Database
from retrace_server.errors import ApiError
from retrace_server.ratelimit.enforce import limit_user
from retrace_server.web import sessions
from retrace_server.web.sessions import SignedIn

SESSION_COOKIE = "retrace_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


async def optional_session(request: Request) -> SignedIn | None:
    """The signed-in user, or None; the result is kept on the request for templates."""
    if hasattr(request.state, "signed_in"):
        signed_in: SignedIn | None = request.state.signed_in
        return signed_in
    token = request.cookies.get(SESSION_COOKIE)
    db: Database = request.app.state.db
    signed_in = await sessions.get(db, token=token) if token else None
    request.state.signed_in = signed_in
    return signed_in


async def require_session(request: Request) -> SignedIn:
    """A signed-in user, counted against their plan's limits like an API request; a page answers
    401 without one, which the error page turns into the sign-in page."""
    signed_in = await optional_session(request)
    if signed_in is None:
        raise ApiError(401, "Sign in to see this page")
    await limit_user(request, user_id=signed_in.user.id, tier=signed_in.user.tier)
    return signed_in


SessionDep = Annotated[SignedIn, Depends(require_session)]
OptionalSessionDep = Annotated[SignedIn | None, Depends(optional_session)]


def same_origin(request: Request) -> bool:
    """A browser names the page that sent a POST in Origin (or Referer); it must be this site."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":
        return origin is None
    sent = urlsplit(origin)
    return (sent.scheme, sent.netloc) == (request.url.scheme, request.url.netloc)


def check_csrf(request: Request, signed_in: SignedIn, submitted: str | None) -> None:
    """Refuses a state-changing request that did not come from one of this site's own pages."""
    if (
        not same_origin(request)
        or not submitted
        or not secrets.compare_digest(submitted, signed_in.csrf_token)
    ):
        raise ApiError(403, "This form has expired or came from another site: reload the page and try again")


async def form_fields(request: Request) -> dict[str, str]:
    """A form-encoded body (the only kind the site's forms send); the last value of a repeated field wins."""
    body = (await request.body()).decode("utf-8", errors="replace")
    try:
        return dict(parse_qsl(body, keep_blank_values=True, max_num_fields=200))
    except ValueError:
        raise ApiError(400, "The form has too many fields") from None


async def checked_form(request: Request, signed_in: SignedIn) -> dict[str, str]:
    fields = await form_fields(request)
    check_csrf(request, signed_in, fields.get(CSRF_FIELD))
    return fields


def check_csrf_header(request: Request, signed_in: SignedIn) -> None:
    check_csrf(request, signed_in, request.headers.get(CSRF_HEADER))


def set_session_cookie(response: Response, request: Request, token: str, settings: Settings) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(settings.web_session_hours * 3600),
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE, httponly=True, samesite="lax", secure=request.url.scheme == "https", path="/"
    )


def local_path(target: str | None, default: str = "/") -> str:
    """Where to go after signing in: only a path of this site, never another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target
