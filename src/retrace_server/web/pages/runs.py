"""The runs list (`/`), its live rows, and span search (`/search`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, cast

import orjson
from fastapi import APIRouter, Depends, Query, Request
from pydantic import ValidationError
from starlette.responses import Response

from retrace_server.embeddings.dependencies import EmbeddingsDep
from retrace_server.errors import ApiError, describe_validation_errors
from retrace_server.jsonutil import JsonResponse, dumps
from retrace_server.pagination import Page
from retrace_server.search import service as search
from retrace_server.search.schemas import SearchRequest
from retrace_server.traces import service as traces
from retrace_server.traces.schemas import RegressionVerdict, TraceFilters, TraceStatus
from retrace_server.web.auth import SessionDep
from retrace_server.web.templating import ENV, render

router = APIRouter(include_in_schema=False)

PAGE_SIZES = (20, 50, 100)
STATUSES = ("running", "completed", "failed")
TIME_RANGES = {
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
TIME_RANGE_LABELS = {
    "": "Any time",
    "1h": "Last hour",
    "24h": "Last 24 hours",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
}

CHECKS = {
    "": "Any",
    "golden": "Golden baselines",
    "regressed": "Regressed",
    "improved": "Improved",
    "changed": "Changed",
    "pass": "Passed",
}


@dataclass(frozen=True)
class RunQuery:
    """The runs page's filters and page, as its URL carries them."""

    status: TraceStatus | None
    name: str
    session: str
    range: str
    check: str
    limit: int
    offset: int

    def filters(self, *, now: datetime) -> TraceFilters:
        since = now - TIME_RANGES[self.range] if self.range in TIME_RANGES else None
        verdict = cast(RegressionVerdict, self.check) if self.check not in ("", "golden") else None
        return TraceFilters(
            status=self.status,
            name=self.name or None,
            session_id=self.session or None,
            since=since,
            golden=True if self.check == "golden" else None,
            regression=verdict,
        )

    @property
    def filtered(self) -> bool:
        return bool(self.status or self.name or self.session or self.range or self.check)


async def run_query(
    # The form's "All" sends an empty status.
    status: Annotated[str, Query(max_length=16)] = "",
    name: Annotated[str, Query(max_length=512)] = "",
    session: Annotated[str, Query(max_length=256)] = "",
    range: Annotated[str, Query(max_length=8)] = "",
    check: Annotated[str, Query(max_length=16)] = "",
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> RunQuery:
    return RunQuery(
        status=cast(TraceStatus, status) if status in STATUSES else None,
        name=name.strip(),
        session=session.strip(),
        range=range if range in TIME_RANGES else "",
        check=check if check in CHECKS else "",
        limit=limit,
        offset=offset,
    )


RunQueryDep = Annotated[RunQuery, Depends(run_query)]


async def _page_of_runs(request: Request, signed_in: SessionDep, query: RunQuery) -> dict[str, Any]:
    rendered, total = await traces.list(
        request.app.state.db,
        user_id=signed_in.user.id,
        filters=query.filters(now=datetime.now(UTC)),
        page=Page(limit=query.limit, offset=query.offset),
    )
    runs: list[dict[str, Any]] = orjson.loads(dumps(rendered))
    return {
        "runs": runs,
        "total": total,
        "query": query,
        "any_running": any(run["status"] == "running" for run in runs),
    }


@router.get("/")
async def runs_page(request: Request, signed_in: SessionDep, query: RunQueryDep) -> Response:
    page = await _page_of_runs(request, signed_in, query)
    return render(
        request,
        "runs.html",
        page_sizes=PAGE_SIZES,
        time_ranges=TIME_RANGE_LABELS,
        checks=CHECKS,
        **page,
    )


@router.get("/_/runs")
async def live_rows(request: Request, signed_in: SessionDep, query: RunQueryDep) -> JsonResponse:
    """The rows of a runs page as HTML, for the page to swap in while some of its runs are running."""
    page = await _page_of_runs(request, signed_in, query)
    rows = ENV.get_template("_run_rows.html").render(**page)
    return JsonResponse(
        {"html": rows, "total": page["total"], "any_running": page["any_running"]},
        headers={"Cache-Control": "no-store"},
    )


def marked(text: str, query: str) -> list[tuple[bool, str]]:
    """The excerpt cut into (is a query word, text) pieces, for the page to mark matches as text."""
    words = sorted({w for w in re.findall(r"\w+", query) if len(w) > 1}, key=len, reverse=True)
    if not words:
        return [(False, text)]
    pattern = re.compile("(" + "|".join(re.escape(w) for w in words) + ")", re.IGNORECASE)
    return [(i % 2 == 1, piece) for i, piece in enumerate(pattern.split(text)) if piece]


@router.get("/search")
async def search_page(
    request: Request,
    signed_in: SessionDep,
    embeddings: EmbeddingsDep,
    q: Annotated[str, Query(max_length=2000)] = "",
    mode: Annotated[str, Query(max_length=16)] = "hybrid",
) -> Response:
    results: list[dict[str, Any]] = []
    used_mode = None
    if q.strip():
        try:
            search_request = SearchRequest(
                query=q, limit=50, mode=mode if mode in ("lexical", "semantic") else "hybrid"
            )
        except ValidationError as exc:
            raise ApiError(400, describe_validation_errors(exc.errors())) from None
        found = await search.search(
            request.app.state.db, embeddings, user_id=signed_in.user.id, request=search_request
        )
        used_mode = found["mode"]
        results = [{**hit, "pieces": marked(hit["highlight"], q)} for hit in found["data"]]
    return render(request, "search.html", q=q, mode=mode, used_mode=used_mode, results=results)
