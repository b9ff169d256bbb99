"""Forks: the list, and `/forks/{id}` with its live status, run history and the diff."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import RedirectResponse, Response

from retrace_server.forks import service as forks
from retrace_server.jsonutil import JsonResponse
from retrace_server.pagination import Page
from retrace_server.web.auth import SessionDep, checked_form
from retrace_server.web.pages.traces import start_replay
from retrace_server.web.templating import render
from retrace_server.web.textdiff import as_text, word_diff

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
# Runs of unchanged steps longer than this fold away, keeping this many on each side in view.
FOLD_AFTER = 6
CONTEXT = 2
LIVE = ("created", "running")


@router.get("/forks")
async def forks_page(
    request: Request, signed_in: SessionDep, offset: Annotated[int, Query(ge=0)] = 0
) -> Response:
    rows, total = await forks.list_forks(
        request.app.state.db, user_id=signed_in.user.id, trace_id=None, page=Page(PAGE_SIZE, offset)
    )
    return render(request, "forks.html", forks=rows, total=total, offset=offset, limit=PAGE_SIZE)


def step_view(step: dict[str, Any]) -> dict[str, Any]:
    view = dict(step)
    if step["status"] == "changed":
        old = as_text((step["original"] or {}).get("output"))
        new = as_text((step["fork"] or {}).get("output"))
        view["words"] = word_diff(old, new)
        old_error, new_error = (step["original"] or {}).get("error"), (step["fork"] or {}).get("error")
        view["error_changed"] = (old_error or None) != (new_error or None)
    return view


def fold_unchanged(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Steps to show, with long stretches of unchanged ones folded into one `fold` entry each."""
    shown: list[dict[str, Any]] = []
    stretch: list[dict[str, Any]] = []

    def flush() -> None:
        if len(stretch) > FOLD_AFTER:
            shown.extend(stretch[:CONTEXT])
            shown.append({"fold": stretch[CONTEXT:-CONTEXT]})
            shown.extend(stretch[-CONTEXT:])
        else:
            shown.extend(stretch)
        stretch.clear()

    for step in steps:
        if step["status"] == "unchanged":
            stretch.append(step)
        else:
            flush()
            shown.append(step)
    flush()
    return shown


@router.get("/forks/{fork_id}")
async def fork_page(fork_id: str, request: Request, signed_in: SessionDep) -> Response:
    db = request.app.state.db
    fork = await forks.get(db, user_id=signed_in.user.id, fork_id=fork_id)
    diff = None
    if fork["result_trace_id"] and fork["status"] not in LIVE:
        diff = await forks.get_diff(db, user_id=signed_in.user.id, fork_id=fork_id)
        diff["shown"] = fold_unchanged([step_view(step) for step in diff["steps"]])
        diff["counts"] = {
            status: sum(1 for s in diff["steps"] if s["status"] == status)
            for status in ("changed", "added", "removed", "unchanged")
        }
    return render(request, "fork.html", fork=fork, diff=diff, live=fork["status"] in LIVE)


@router.get("/_/forks/{fork_id}")
async def fork_status(fork_id: str, request: Request, signed_in: SessionDep) -> JsonResponse:
    """What the fork page watches while a replay runs."""
    fork = await forks.get(request.app.state.db, user_id=signed_in.user.id, fork_id=fork_id)
    return JsonResponse(
        {"status": fork["status"], "runs": len(fork["runs"]), "error": fork["error"]},
        headers={"Cache-Control": "no-store"},
    )


@router.post("/forks/{fork_id}/replay")
async def replay_again(fork_id: str, request: Request, signed_in: SessionDep) -> Response:
    await checked_form(request, signed_in)
    await start_replay(request, user_id=signed_in.user.id, fork_id=fork_id)
    return RedirectResponse(f"/forks/{fork_id}", status_code=303)
