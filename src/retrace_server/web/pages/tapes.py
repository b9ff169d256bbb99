"""Tapes: your published runs (`/tapes`) and the public page of one (`/t/{slug}`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import RedirectResponse, Response

from retrace_server.config import Settings
from retrace_server.jsonutil import dumps
from retrace_server.pagination import Page
from retrace_server.ratelimit import ip_rate_limit
from retrace_server.ratelimit.enforce import limit_user
from retrace_server.tapes import service as tapes
from retrace_server.web.auth import OptionalSessionDep, SessionDep, checked_form
from retrace_server.web.templating import page_with_data, render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50


@router.get("/tapes")
async def my_tapes(
    request: Request,
    signed_in: SessionDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    published: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    settings: Settings = request.app.state.settings
    rows, total = await tapes.list_tapes(
        request.app.state.db,
        page=Page(PAGE_SIZE, offset),
        public_url=settings.public_url,
        owner_id=signed_in.user.id,
    )
    just_published = next((tape for tape in rows if tape["slug"] == published), None)
    return render(
        request,
        "tapes.html",
        tapes=rows,
        total=total,
        offset=offset,
        limit=PAGE_SIZE,
        published=just_published,
    )


@router.post("/tapes/{slug}/delete")
async def delete_tape(slug: str, request: Request, signed_in: SessionDep) -> Response:
    await checked_form(request, signed_in)
    await tapes.delete_tape(request.app.state.db, user_id=signed_in.user.id, slug=slug)
    return RedirectResponse("/tapes?deleted=1", status_code=303)


@router.get("/t/{slug}")
async def public_tape(slug: str, request: Request, signed_in: OptionalSessionDep) -> Response:
    """Anyone with the link reads it, signed in or not; anonymous readers are limited per address."""
    if signed_in is None:
        await ip_rate_limit(request)
    else:
        await limit_user(request, user_id=signed_in.user.id, tier=signed_in.user.tier)
    settings: Settings = request.app.state.settings
    tape = await tapes.get(request.app.state.db, slug=slug, public_url=settings.public_url)
    data = dumps({**tape["trace"], "spans": tape["spans"]})
    return page_with_data(request, "tape.html", data=data, tape=tape)
