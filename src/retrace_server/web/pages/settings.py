"""Settings: the API key (generate or rotate, shown once; revoke), the plan, and rate limits."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from retrace_server.api_keys import service as api_keys
from retrace_server.auth.keys import hash_key
from retrace_server.billing import service as billing
from retrace_server.config import Settings
from retrace_server.jsonutil import JsonResponse
from retrace_server.ratelimit.enforce import get_usage
from retrace_server.web import sessions
from retrace_server.web.auth import SESSION_COOKIE, SessionDep, check_csrf_header, checked_form
from retrace_server.web.sessions import SignedIn
from retrace_server.web.templating import render

router = APIRouter(include_in_schema=False)


async def _settings_page(request: Request, signed_in: SignedIn, *, new_key: str | None = None) -> Response:
    settings: Settings = request.app.state.settings
    key = await api_keys.get(request.app.state.db, user_id=signed_in.user.id)
    response = render(
        request,
        "settings.html",
        key=key,
        new_key=new_key,
        usage=await get_usage(request, user_id=signed_in.user.id, tier=signed_in.user.tier),
        billing_configured=bool(settings.dodo_api_key and settings.dodo_pro_product_id),
    )
    return response


@router.get("/settings")
async def settings_page(request: Request, signed_in: SessionDep) -> Response:
    return await _settings_page(request, signed_in)


@router.post("/settings/key")
async def rotate_key(request: Request, signed_in: SessionDep) -> Response:
    """A new key, shown in this answer only; the previous key stops working at once. This
    browser stays signed in with the new key; other sessions opened with the old one end."""
    await checked_form(request, signed_in)
    created = await api_keys.create(request.app.state.db, user_id=signed_in.user.id)
    if signed_in.user.auth_method == "api_key":
        token = request.cookies.get(SESSION_COOKIE, "")
        await sessions.update(request.app.state.db, token=token, api_key_hash=hash_key(created.key))
    return await _settings_page(request, signed_in, new_key=created.key)


@router.post("/settings/key/revoke")
async def revoke_key(request: Request, signed_in: SessionDep) -> Response:
    await checked_form(request, signed_in)
    await api_keys.delete(request.app.state.db, user_id=signed_in.user.id)
    # A session opened with the key ends with it (this one included).
    target = "/signin?notice=revoked" if signed_in.user.auth_method == "api_key" else "/settings"
    return RedirectResponse(target, status_code=303)


@router.post("/_/billing/checkout")
async def checkout(request: Request, signed_in: SessionDep) -> JsonResponse:
    check_csrf_header(request, signed_in)
    session = await billing.create_checkout(
        request.app.state.db, request.app.state.settings, user_id=signed_in.user.id
    )
    return JsonResponse({"url": session.checkout_url})


@router.post("/_/billing/portal")
async def portal(request: Request, signed_in: SessionDep) -> JsonResponse:
    check_csrf_header(request, signed_in)
    session = await billing.create_portal_session(
        request.app.state.db, request.app.state.settings, user_id=signed_in.user.id
    )
    return JsonResponse({"url": session.url})
