"""Golden baselines on the site: marking a run golden, and `/traces/{id}/regression`, a run
compared step by step with its baseline."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from retrace_server.baselines import service as baselines
from retrace_server.web.auth import SessionDep, checked_form
from retrace_server.web.pages.forks import fold_unchanged, step_view
from retrace_server.web.templating import render

router = APIRouter(include_in_schema=False)


@router.post("/traces/{trace_id}/golden")
async def mark_golden(trace_id: str, request: Request, signed_in: SessionDep) -> Response:
    fields = await checked_form(request, signed_in)
    await baselines.update_golden(
        request.app.state.db,
        user_id=signed_in.user.id,
        trace_id=trace_id,
        golden=fields.get("golden") == "true",
    )
    return RedirectResponse(f"/traces/{trace_id}", status_code=303)


def _as_fork_step(step: dict[str, Any]) -> dict[str, Any]:
    """A comparison's step in the fork diff's words, which the aligned-steps table speaks."""
    return {
        "index": step["index"],
        "status": step["status"],
        "original": step["baseline"],
        "fork": step["run"],
    }


@router.get("/traces/{trace_id}/regression")
async def regression_page(trace_id: str, request: Request, signed_in: SessionDep) -> Response:
    report = await baselines.get_regression(
        request.app.state.db,
        settings=request.app.state.settings,
        user_id=signed_in.user.id,
        trace_id=trace_id,
    )
    steps = [step_view(_as_fork_step(step)) for step in report["steps"] or []]
    counts = {
        status: sum(1 for s in steps if s["status"] == status)
        for status in ("changed", "added", "removed", "unchanged")
    }
    return render(
        request,
        "regression.html",
        trace_id=trace_id,
        report=report,
        shown=fold_unchanged(steps),
        counts=counts,
    )
