"""Golden marks and regression verdicts through the API, and the hooks the write paths call."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import select

from retrace_server.baselines import service
from retrace_server.db.engine import Database
from retrace_server.ingest import TraceWrite, WriteOutcome
from retrace_server.traces.models import Trace
from tests.support.server import ApiUser, RunningServer

T = TypeVar("T")


def _with_db(server: RunningServer, work: Callable[[Database], Awaitable[T]]) -> T:
    async def _run() -> T:
        db = Database(server.settings)
        try:
            return await work(db)
        finally:
            await db.dispose()

    return asyncio.run(_run())


def _record(
    user: ApiUser,
    *,
    minute: int,
    tools: list[str],
    name: str = "support-agent",
    status: str = "completed",
    **extra: Any,
) -> str:
    """A run: an LLM call, the tools in order, a final LLM call; started `minute` minutes in."""
    trace_id = str(uuid.uuid4())
    steps = [
        ("llm_call", "openai.chat"),
        *[("tool_call", tool) for tool in tools],
        ("llm_call", "openai.chat"),
    ]
    spans = [
        {
            "id": f"{trace_id}-{i}",
            "span_type": kind,
            "name": step,
            "model": "gpt-4o-mini" if kind == "llm_call" else None,
            "input_tokens": 100 if kind == "llm_call" else None,
            "output_tokens": 20 if kind == "llm_call" else None,
            "output": f"step {i} of {trace_id}",
            "started_at": f"2026-12-01T10:{minute:02d}:{i:02d}Z",
            "ended_at": f"2026-12-01T10:{minute:02d}:{i:02d}.500Z",
        }
        for i, (kind, step) in enumerate(steps)
    ]
    body = {
        "id": trace_id,
        "name": name,
        "status": status,
        "started_at": f"2026-12-01T10:{minute:02d}:00Z",
        "spans": spans,
        **extra,
    }
    if status != "running":
        body["ended_at"] = f"2026-12-01T10:{minute:02d}:59Z"
    r = user.client.post("/api/v1/traces", json=body)
    assert r.status_code == 201, r.text
    return trace_id


def _golden(user: ApiUser, trace_id: str, golden: bool = True) -> dict[str, Any]:
    r = user.client.post(f"/api/v1/traces/{trace_id}/golden", json={"golden": golden})
    assert r.status_code == 200, r.text
    mark: dict[str, Any] = r.json()
    return mark


def test_mark_and_unmark_golden(alice: ApiUser, bob: ApiUser) -> None:
    trace_id = _record(alice, minute=0, tools=["lookup_order"], project_id="shop")
    mark = _golden(alice, trace_id)
    assert (mark["trace_id"], mark["golden"], mark["trace_name"], mark["project_id"]) == (
        trace_id,
        True,
        "support-agent",
        "shop",
    )
    assert mark["marked_at"].endswith("Z")
    assert alice.client.get(f"/api/v1/traces/{trace_id}/golden").json()["golden"] is True
    unmarked = _golden(alice, trace_id, golden=False)
    assert (unmarked["golden"], unmarked["marked_at"]) == (False, None)
    assert alice.client.get(f"/api/v1/traces/{trace_id}/golden").json()["golden"] is False

    for path in (f"/api/v1/traces/{trace_id}/golden", "/api/v1/traces/no-such-trace/golden"):
        r = bob.client.post(path, json={"golden": True})
        assert r.status_code == 404 and r.json() == {"error": "Trace not found"}
    for body, field in (({"golden": "maybe"}, "golden"), ({}, "golden"), ({"golden": True, "x": 1}, "x")):
        r = alice.client.post(f"/api/v1/traces/{trace_id}/golden", json=body)
        assert r.status_code == 400 and r.json()["error"].startswith(f"{field}:"), r.text


def test_later_runs_are_compared_with_the_newest_baseline(alice: ApiUser, bob: ApiUser) -> None:
    earlier = _record(alice, minute=0, tools=["lookup_order"])
    baseline = _record(alice, minute=1, tools=["lookup_order"])
    _golden(alice, baseline)
    same = _record(alice, minute=2, tools=["lookup_order"])
    different = _record(alice, minute=3, tools=["lookup_order", "refund_order"])

    r = alice.client.get(f"/api/v1/traces/{same}/regression")
    assert r.status_code == 200, r.text
    report = r.json()
    assert (report["verdict"], report["baseline_trace_id"], report["findings"]) == ("pass", baseline, [])
    assert [step["status"] for step in report["steps"]] == ["changed"] * 3
    assert report["totals"]["run"]["tool_calls"] == ["lookup_order"]

    report = alice.client.get(f"/api/v1/traces/{different}/regression").json()
    assert report["verdict"] == "regressed"
    assert {f["kind"] for f in report["findings"]} >= {"steps", "tool_sequence"}
    assert "lookup_order became lookup_order → refund_order" in report["summary"]
    added = [s for s in report["steps"] if s["status"] == "added"]
    assert [s["run"]["name"] for s in added] == ["refund_order"]

    # A newer baseline takes over for the runs that start after it.
    _golden(alice, different)
    later = _record(alice, minute=4, tools=["lookup_order", "refund_order"])
    assert alice.client.get(f"/api/v1/traces/{later}/regression").json()["baseline_trace_id"] == different
    # The runs compared before keep their baseline.
    assert alice.client.get(f"/api/v1/traces/{same}/regression").json()["baseline_trace_id"] == baseline

    # A run that started before every baseline, or is still running, has nothing to compare with.
    for trace_id in (earlier, _record(alice, minute=5, tools=[], status="running")):
        r = alice.client.get(f"/api/v1/traces/{trace_id}/regression")
        assert r.status_code == 404 and "no regression result" in r.json()["error"]
    assert bob.client.get(f"/api/v1/traces/{same}/regression").status_code == 404


def test_baselines_are_per_name_and_project(alice: ApiUser) -> None:
    baseline = _record(alice, minute=0, tools=["a"], project_id="web")
    _golden(alice, baseline)
    for trace_id in (
        _record(alice, minute=1, tools=["a"], project_id="mobile"),
        _record(alice, minute=1, tools=["a"]),
        _record(alice, minute=1, tools=["a"], name="other-agent", project_id="web"),
    ):
        assert alice.client.get(f"/api/v1/traces/{trace_id}/regression").status_code == 404
    same_project = _record(alice, minute=2, tools=["a"], project_id="web")
    assert alice.client.get(f"/api/v1/traces/{same_project}/regression").json()["verdict"] == "pass"


def test_the_completion_hook_stores_verdicts_that_lists_filter_on(
    server: RunningServer, alice: ApiUser
) -> None:
    baseline = _record(alice, minute=0, tools=["lookup_order"])
    _golden(alice, baseline)
    passing = _record(alice, minute=1, tools=["lookup_order"])
    regressed = _record(alice, minute=2, tools=[])
    running = _record(alice, minute=3, tools=[], status="running")

    async def review(db: Database) -> Any:
        await service.review_completed(
            db, settings=server.settings, user_id=alice.id, trace_ids=[passing, regressed, running, "unknown"]
        )
        briefs = await service.briefs_for_traces(
            db, user_id=alice.id, trace_ids=[baseline, passing, regressed, running]
        )
        async with db.read() as session:
            golden = set(
                (
                    await session.execute(
                        select(Trace.id).where(
                            Trace.user_id == alice.id,
                            Trace.id.in_(service.golden_trace_ids(user_id=alice.id)),
                        )
                    )
                ).scalars()
            )
            worse = set(
                (
                    await session.execute(
                        select(Trace.id).where(
                            Trace.user_id == alice.id,
                            Trace.id.in_(service.regression_trace_ids(user_id=alice.id, verdict="regressed")),
                        )
                    )
                ).scalars()
            )
        return briefs, golden, worse

    briefs, golden, worse = _with_db(server, review)
    assert briefs[baseline] == {"golden": True, "regression": None}
    assert briefs[passing]["regression"]["verdict"] == "pass"
    assert briefs[regressed]["regression"] == {
        "verdict": "regressed",
        "baseline_trace_id": baseline,
        "summary": briefs[regressed]["regression"]["summary"],
    }
    assert "lookup_order became (none)" in briefs[regressed]["regression"]["summary"]
    assert running not in briefs
    assert golden == {baseline}
    assert worse == {regressed}

    # Deleting traces forgets their marks and verdicts.
    assert alice.client.delete(f"/api/v1/traces/{regressed}").status_code == 204
    assert alice.client.delete(f"/api/v1/traces/{baseline}").status_code == 204

    async def after_delete(db: Database) -> Any:
        return await service.briefs_for_traces(db, user_id=alice.id, trace_ids=[baseline, passing, regressed])

    briefs = _with_db(server, after_delete)
    assert set(briefs) == {passing}
    # The baseline is gone: the stored verdict is what remains, without aligned steps.
    report = alice.client.get(f"/api/v1/traces/{passing}/regression").json()
    assert (report["verdict"], report["baseline_trace_id"], report["steps"]) == ("pass", baseline, None)


def test_the_completion_hook_compares_ended_traces_in_the_background(
    server: RunningServer, alice: ApiUser
) -> None:
    baseline = _record(alice, minute=0, tools=["lookup_order"])
    _golden(alice, baseline)
    ended = _record(alice, minute=1, tools=["lookup_order", "lookup_order"])
    running = _record(alice, minute=2, tools=[], status="running")

    async def commit_and_wait(db: Database) -> dict[str, dict[str, Any]]:
        hook = service.completion_hook(db, server.settings)
        await hook(
            alice.id,
            [TraceWrite(trace_id=ended, mode="update"), TraceWrite(trace_id=running, mode="update")],
            [
                WriteOutcome(trace_id=ended, trace={"id": ended, "status": "completed"}),
                WriteOutcome(trace_id=running, trace={"id": running, "status": "running"}),
            ],
        )
        for _ in range(300):
            briefs = await service.briefs_for_traces(db, user_id=alice.id, trace_ids=[ended, running])
            if ended in briefs:
                return briefs
            await asyncio.sleep(0.1)
        return {}

    briefs = _with_db(server, commit_and_wait)
    assert briefs[ended]["regression"]["verdict"] == "regressed"
    assert running not in briefs
