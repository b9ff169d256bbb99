"""Golden baselines: marking them, comparing completed runs with them, and reading the verdicts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from retrace_server.baselines.compare import compare
from retrace_server.baselines.models import GoldenBaseline, RegressionResult
from retrace_server.config import Settings
from retrace_server.db.engine import Database
from retrace_server.db.types import utcnow
from retrace_server.db.upsert import insert_or_update
from retrace_server.errors import NotFound
from retrace_server.ingest import CommittedHook, TraceWrite, WriteOutcome
from retrace_server.recent import Recent
from retrace_server.traces import answers
from retrace_server.traces import service as traces_service
from retrace_server.traces.models import Trace

logger = logging.getLogger("retrace_server.baselines")

_CHUNK = 500
# The completion hook runs after every write that ends a run; it rereads which names and projects
# have a baseline at most this often per process (a mark made here is seen at once).
GOLDEN_KEYS_MAX_AGE_S = 1.0
# (database, user) -> the (name, project) pairs of the user's golden baselines.
_golden_keys: Recent[tuple[str, str], frozenset[tuple[str, str]]] = Recent(max_age_s=GOLDEN_KEYS_MAX_AGE_S)


async def _baselined(db: Database, *, user_id: str) -> frozenset[tuple[str, str]]:
    """The (name, project) pairs of the user's golden baselines, read at most once a second."""
    key = (db.url, user_id)
    known, pairs = _golden_keys.lookup(key)
    if known and pairs is not None:
        return pairs
    async with db.read() as session:
        rows = await session.execute(
            select(GoldenBaseline.name_key, GoldenBaseline.project_key)
            .where(GoldenBaseline.user_id == user_id)
            .distinct()
        )
        return _golden_keys.put(key, frozenset((row.name_key, row.project_key) for row in rows))


async def _trace_row(session: AsyncSession, *, user_id: str, trace_id: str) -> Any:
    row = (
        await session.execute(
            select(Trace.id, Trace.name, Trace.status, Trace.project_id, Trace.started_at).where(
                Trace.id == trace_id, Trace.user_id == user_id
            )
        )
    ).first()
    if row is None:
        raise NotFound("Trace")
    return row


def _golden_dict(trace: Any, mark: GoldenBaseline | None) -> dict[str, Any]:
    return {
        "trace_id": trace.id,
        "golden": mark is not None,
        "trace_name": trace.name,
        "project_id": trace.project_id,
        "marked_at": mark.marked_at if mark is not None else None,
    }


async def update_golden(db: Database, *, user_id: str, trace_id: str, golden: bool) -> dict[str, Any]:
    """Marks (or unmarks) a trace as the baseline of its name and project. Marking an already
    golden trace again makes it the newest baseline."""
    answer = await _store_golden(db, user_id=user_id, trace_id=trace_id, golden=golden)
    _golden_keys.discard((db.url, user_id))
    return answer


async def _store_golden(db: Database, *, user_id: str, trace_id: str, golden: bool) -> dict[str, Any]:
    async with db.write() as session:
        trace = await _trace_row(session, user_id=user_id, trace_id=trace_id)
        if not golden:
            await session.execute(
                delete(GoldenBaseline).where(
                    GoldenBaseline.user_id == user_id, GoldenBaseline.trace_id == trace_id
                )
            )
            return _golden_dict(trace, None)
        mark = GoldenBaseline(
            user_id=user_id,
            trace_id=trace_id,
            name_key=trace.name or "",
            project_key=trace.project_id or "",
            marked_at=utcnow(),
        )
        await insert_or_update(
            session,
            GoldenBaseline,
            [
                {
                    "user_id": mark.user_id,
                    "trace_id": mark.trace_id,
                    "name_key": mark.name_key,
                    "project_key": mark.project_key,
                    "marked_at": mark.marked_at,
                }
            ],
            keys=["user_id", "trace_id"],
            update_columns=["name_key", "project_key", "marked_at"],
        )
        return _golden_dict(trace, mark)


async def get_golden(db: Database, *, user_id: str, trace_id: str) -> dict[str, Any]:
    async with db.read() as session:
        trace = await _trace_row(session, user_id=user_id, trace_id=trace_id)
        mark = (
            await session.execute(
                select(GoldenBaseline).where(
                    GoldenBaseline.user_id == user_id, GoldenBaseline.trace_id == trace_id
                )
            )
        ).scalar_one_or_none()
        return _golden_dict(trace, mark)


async def _baseline_for(session: AsyncSession, *, user_id: str, run: Any) -> str | None:
    """The newest baseline of the run's name and project among traces that started before it."""
    query = (
        select(GoldenBaseline.trace_id)
        .join(Trace, (Trace.id == GoldenBaseline.trace_id) & (Trace.user_id == GoldenBaseline.user_id))
        .where(
            GoldenBaseline.user_id == user_id,
            GoldenBaseline.name_key == (run.name or ""),
            GoldenBaseline.project_key == (run.project_id or ""),
            GoldenBaseline.trace_id != run.id,
            Trace.started_at <= run.started_at,
        )
        .order_by(GoldenBaseline.marked_at.desc(), GoldenBaseline.trace_id)
        .limit(1)
    )
    baseline: str | None = (await session.execute(query)).scalar_one_or_none()
    return baseline


async def _compare_and_store(
    db: Database, *, tolerance: float, user_id: str, trace_id: str, baseline_id: str | None = None
) -> dict[str, Any] | None:
    async with db.read() as session:
        run = await _trace_row(session, user_id=user_id, trace_id=trace_id)
        if run.status == "running":
            return None
        baseline_id = baseline_id or await _baseline_for(session, user_id=user_id, run=run)
    if baseline_id is None:
        return None
    try:
        baseline = await traces_service.get(db, user_id=user_id, trace_id=baseline_id)
    except NotFound:
        return None
    comparison = compare(
        baseline, await traces_service.get(db, user_id=user_id, trace_id=trace_id), tolerance=tolerance
    )
    comparison["compared_at"] = utcnow()
    stored = {
        "findings": comparison["findings"],
        "totals": comparison["totals"],
        "tolerance": tolerance,
        "first_divergence": comparison["first_divergence"],
    }
    result = {
        "user_id": user_id,
        "trace_id": trace_id,
        "baseline_trace_id": baseline_id,
        "verdict": comparison["verdict"],
        "summary": comparison["summary"],
        "findings": stored,
        "compared_at": comparison["compared_at"],
    }
    async with db.write() as session:
        await insert_or_update(
            session,
            RegressionResult,
            [result],
            keys=["user_id", "trace_id"],
            update_columns=["baseline_trace_id", "verdict", "summary", "findings", "compared_at"],
        )
    return comparison


async def review_completed(
    db: Database, *, settings: Settings, user_id: str, trace_ids: Sequence[str]
) -> None:
    """Compares each of these traces that has ended with the newest golden baseline of its name
    (and project) that started before it, and stores the verdict (`regression` on the trace).

    Call it after a write that may have ended traces; running traces and traces without a baseline
    are skipped, and comparing again replaces the stored result. Never raises: faults are logged.
    """
    for trace_id in dict.fromkeys(trace_ids):
        try:
            await _compare_and_store(
                db, tolerance=settings.regression_tolerance, user_id=user_id, trace_id=trace_id
            )
        except NotFound:
            continue
        except Exception:
            logger.exception("Regression comparison of trace %s failed", trace_id)


def completion_hook(db: Database, settings: Settings) -> CommittedHook:
    """For `Ingestor.committed_hooks`: after a write that left traces ended (completed or failed),
    compares them with their baselines in a task of their own, so the write's answer never waits
    for a comparison (`GET .../regression` compares on demand meanwhile)."""
    running: set[asyncio.Task[None]] = set()

    async def compare_ended(user_id: str, _writes: list[TraceWrite], outcomes: list[WriteOutcome]) -> None:
        ended = [
            outcome.trace
            for outcome in outcomes
            if outcome.ok
            and outcome.trace is not None
            and outcome.trace.get("status") not in (None, "running")
        ]
        if not ended:
            return
        baselined = await _baselined(db, user_id=user_id)
        ended = [t for t in ended if (t.get("name") or "", t.get("project_id") or "") in baselined]
        if not ended:
            return
        trace_ids = [trace["id"] for trace in ended]
        task = asyncio.create_task(
            review_completed(db, settings=settings, user_id=user_id, trace_ids=trace_ids)
        )
        running.add(task)
        task.add_done_callback(running.discard)

    return compare_ended


async def get_regression(db: Database, *, settings: Settings, user_id: str, trace_id: str) -> dict[str, Any]:
    """The full comparison of a run with its baseline, aligned step by step.

    A stored result is compared again with the same baseline (the run may have gained spans since);
    a run never compared (it ended before its baseline was marked, say) is compared now.
    """
    async with db.read() as session:
        await _trace_row(session, user_id=user_id, trace_id=trace_id)
        stored = (
            await session.execute(
                select(RegressionResult).where(
                    RegressionResult.user_id == user_id, RegressionResult.trace_id == trace_id
                )
            )
        ).scalar_one_or_none()
    comparison = await _compare_and_store(
        db,
        tolerance=settings.regression_tolerance,
        user_id=user_id,
        trace_id=trace_id,
        baseline_id=stored.baseline_trace_id if stored is not None else None,
    )
    if comparison is not None:
        return comparison
    if stored is not None:
        # The baseline trace is gone: what was found then is all there is.
        return {
            "trace_id": trace_id,
            "baseline_trace_id": stored.baseline_trace_id,
            "verdict": stored.verdict,
            "summary": stored.summary,
            "steps": None,
            "compared_at": stored.compared_at,
            **stored.findings,
        }
    raise NotFound(
        "Regression",
        message=(
            f"Trace {trace_id!r} has no regression result: it is still running, or no golden baseline "
            "of its name (and project) started before it"
        ),
    )


def golden_trace_ids(*, user_id: str) -> Select[Any]:
    """Ids of the user's golden traces, for `GET /api/v1/traces?golden=true`:
    `query.where(Trace.user_id == user_id, Trace.id.in_(golden_trace_ids(user_id=user_id)))`."""
    return select(GoldenBaseline.trace_id).where(GoldenBaseline.user_id == user_id)


def regression_trace_ids(*, user_id: str, verdict: str) -> Select[Any]:
    """Ids of the user's traces whose regression verdict is `verdict`, for
    `GET /api/v1/traces?regression=regressed` (any of pass, regressed, improved, changed)."""
    return select(RegressionResult.trace_id).where(
        RegressionResult.user_id == user_id, RegressionResult.verdict == verdict
    )


async def briefs_for_traces(
    db: Database, *, user_id: str, trace_ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """`{"golden": bool, "regression": {verdict, baseline_trace_id, summary} | None}` for each of
    these traces that is golden or was compared (absent otherwise), for trace answers to show."""
    found: dict[str, dict[str, Any]] = {}
    async with db.read() as session:
        for start in range(0, len(trace_ids), _CHUNK):
            chunk = list(trace_ids[start : start + _CHUNK])
            golden = await session.execute(
                select(GoldenBaseline.trace_id).where(
                    GoldenBaseline.user_id == user_id, GoldenBaseline.trace_id.in_(chunk)
                )
            )
            for trace_id in golden.scalars():
                found[trace_id] = {"golden": True, "regression": None}
            results = await session.execute(
                select(RegressionResult).where(
                    RegressionResult.user_id == user_id, RegressionResult.trace_id.in_(chunk)
                )
            )
            for result in results.scalars():
                entry = found.setdefault(result.trace_id, {"golden": False, "regression": None})
                entry["regression"] = {
                    "verdict": result.verdict,
                    "baseline_trace_id": result.baseline_trace_id,
                    "summary": result.summary,
                }
    return found


def _golden_sql() -> dict[str, str]:
    marked = (
        f"EXISTS (SELECT 1 FROM {GoldenBaseline.__tablename__} g "
        "WHERE g.user_id = traces.user_id AND g.trace_id = traces.id)"
    )
    return {"sqlite": f"json(CASE WHEN {marked} THEN 'true' ELSE 'false' END)", "postgresql": marked}


def _regression_sql() -> dict[str, str]:
    def brief(build: str) -> str:
        return (
            f"(SELECT {build}('verdict', r.verdict, 'baseline_trace_id', r.baseline_trace_id, "
            f"'summary', r.summary) FROM {RegressionResult.__tablename__} r "
            "WHERE r.user_id = traces.user_id AND r.trace_id = traces.id)"
        )

    # json(): a subquery's result reaches the outer object as text, not as JSON.
    return {"sqlite": f"json({brief('json_object')})", "postgresql": brief("json_build_object")}


def _is_golden(user_id: str, golden: Any) -> Any:
    marked = Trace.id.in_(golden_trace_ids(user_id=user_id))
    return marked if golden else ~marked


def _has_verdict(user_id: str, verdict: Any) -> Any:
    return Trace.id.in_(regression_trace_ids(user_id=user_id, verdict=verdict))


def register_trace_answers() -> None:
    """Trace answers show each trace's golden mark and regression verdict, and trace lists filter
    on them (`?golden=true`, `?regression=regressed`): one indexed lookup of each per trace."""
    answers.register_field(answers.AnswerField("golden", _golden_sql()))
    answers.register_field(answers.AnswerField("regression", _regression_sql()))
    answers.register_filter("golden", _is_golden)
    answers.register_filter("regression", _has_verdict)
