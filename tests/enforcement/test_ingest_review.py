"""The ingest backstop: what was stored is judged against the policies, never dropped."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from retrace_server.db.engine import Database
from retrace_server.enforcement import service
from retrace_server.ingest import SpanPart, TraceWrite
from tests.support.server import ApiUser, RunningServer

POLICIES = "/api/v1/enforcement/policies"


def _review(server: RunningServer, user: ApiUser, writes: list[TraceWrite]) -> dict[str, service.Breach]:
    async def _run() -> dict[str, service.Breach]:
        db = Database(server.settings)
        try:
            return await service.review_stored(db, user_id=user.id, writes=writes)
        finally:
            await db.dispose()

    return asyncio.run(_run())


def _span(span_id: str, *, tokens: int = 0, tool: str | None = None, args: Any = None) -> dict[str, Any]:
    return {
        "id": span_id,
        "span_type": "tool_call" if tool else "llm_call",
        "name": tool or "openai.chat",
        "input": args,
        "input_tokens": tokens,
        "output_tokens": 0,
        "started_at": "2026-12-01T10:00:00Z",
    }


def _store(user: ApiUser, spans: list[dict[str, Any]], **fields: Any) -> str:
    trace_id = str(uuid.uuid4())
    body = {"id": trace_id, "name": "agent", "started_at": "2026-12-01T10:00:00Z", "spans": spans, **fields}
    r = user.client.post("/api/v1/traces", json=body)
    assert r.status_code == 201, r.text
    return trace_id


def _write(trace_id: str, spans: list[dict[str, Any]]) -> TraceWrite:
    return TraceWrite(trace_id=trace_id, spans=[SpanPart(values={"id": s["id"]}) for s in spans])


def _policy(user: ApiUser, **body: Any) -> dict[str, Any]:
    r = user.client.post(POLICIES, json={"name": body.pop("name", "guard"), **body})
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


def test_a_stored_run_over_budget_is_kept_marked_and_halted(server: RunningServer, alice: ApiUser) -> None:
    budget = _policy(alice, name="budget", kind="run_budget", max_tokens=100)
    spans = [_span("a", tokens=80), _span("b", tokens=70)]
    trace_id = _store(alice, spans)
    halted = _review(server, alice, [_write(trace_id, spans)])
    assert list(halted) == [trace_id]
    assert (halted[trace_id].policy_id, halted[trace_id].kind) == (budget["id"], "run_budget")
    assert "150 tokens" in halted[trace_id].reason
    assert alice.client.get(f"/api/v1/traces/{trace_id}").json()["span_count"] == 2
    breaches = alice.client.get("/api/v1/enforcement/breaches", params={"trace_id": trace_id}).json()
    assert [(b["policy_id"], b["action"]) for b in breaches["data"]] == [(budget["id"], "block")]
    # Reviewing the same spans again counts nothing twice, and the run stays halted.
    again = _review(server, alice, [_write(trace_id, spans)])
    assert again[trace_id].policy_id == budget["id"]
    check = alice.client.post(
        "/api/v1/enforcement/check", json={"run_id": trace_id, "span_id": "b", "proposed_tokens": 70}
    ).json()
    assert check["usage"] == {"steps": 2, "tokens": 150, "usd": 0.0}


def test_spans_the_check_counted_are_not_counted_again(server: RunningServer, alice: ApiUser) -> None:
    _policy(alice, kind="run_budget", max_tokens=100)
    trace_id = str(uuid.uuid4())
    r = alice.client.post(
        "/api/v1/enforcement/check", json={"run_id": trace_id, "span_id": "a", "proposed_tokens": 60}
    )
    assert r.json()["verdict"] == "allow"
    spans = [_span("a", tokens=60), _span("b", tokens=30)]
    r = alice.client.post(
        "/api/v1/traces",
        json={"id": trace_id, "name": "agent", "started_at": "2026-12-01T10:00:00Z", "spans": spans},
    )
    assert r.status_code == 201
    assert _review(server, alice, [_write(trace_id, spans)]) == {}
    usage = alice.client.post(
        "/api/v1/enforcement/check", json={"run_id": trace_id, "span_id": "b", "proposed_tokens": 30}
    ).json()["usage"]
    assert usage == {"steps": 2, "tokens": 90, "usd": 0.0}


def test_denied_tools_and_loops_found_in_stored_spans(server: RunningServer, alice: ApiUser) -> None:
    deny = _policy(alice, name="no rm", kind="tool_deny", tools=["rm"])
    loop = _policy(alice, name="loop", kind="tool_loop", max_repeats=2)
    looping = [_span(f"s{i}", tool="search", args={"q": "same"}) for i in range(3)]
    loop_trace = _store(alice, looping)
    halted = _review(server, alice, [_write(loop_trace, looping)])
    assert halted[loop_trace].policy_id == loop["id"]
    assert "'search' was called 3 times" in halted[loop_trace].reason
    removing = [_span("x", tool="rm", args=["./build"])]
    rm_trace = _store(alice, removing)
    assert _review(server, alice, [_write(rm_trace, removing)])[rm_trace].policy_id == deny["id"]
    fine = [_span("y", tool="ls")]
    fine_trace = _store(alice, fine)
    assert _review(server, alice, [_write(fine_trace, fine)]) == {}


def test_approvals_are_judged_when_the_run_ends(server: RunningServer, alice: ApiUser) -> None:
    approval = _policy(alice, kind="tool_approval", tools=["refund"])
    asked = [_span("r1", tool="refund", args={"order": 1})]
    approved_trace = _store(alice, asked)
    hold = alice.client.post(
        "/api/v1/enforcement/check",
        json={"run_id": approved_trace, "span_id": "r1", "tool_name": "refund"},
    ).json()
    alice.client.post(f"/api/v1/enforcement/holds/{hold['hold_id']}/approve")

    unasked = [_span("r2", tool="refund", args={"order": 2})]
    unasked_trace = _store(alice, unasked)
    # While the runs go on, nothing is judged: a person may still be deciding.
    assert _review(server, alice, [_write(approved_trace, asked), _write(unasked_trace, unasked)]) == {}
    assert alice.client.get("/api/v1/enforcement/breaches").json()["total"] == 0

    for trace_id in (approved_trace, unasked_trace):
        alice.client.patch(f"/api/v1/traces/{trace_id}", json={"status": "completed"})
    # A hold policy's breach marks the trace but does not halt anything.
    assert _review(server, alice, [TraceWrite(approved_trace), TraceWrite(unasked_trace)]) == {}
    breaches = alice.client.get("/api/v1/enforcement/breaches").json()["data"]
    assert [(b["trace_id"], b["policy_id"], b["action"]) for b in breaches] == [
        (unasked_trace, approval["id"], "hold")
    ]
    assert "'refund' ran without approval" in breaches[0]["reason"]


def test_users_without_policies_and_other_users_traces(
    server: RunningServer, alice: ApiUser, bob: ApiUser
) -> None:
    spans = [_span("a", tokens=10**6)]
    trace_id = _store(alice, spans)
    assert _review(server, alice, [_write(trace_id, spans)]) == {}
    _policy(bob, kind="run_budget", max_tokens=1)
    assert _review(server, bob, [_write(trace_id, spans)]) == {}
    assert bob.client.get("/api/v1/enforcement/breaches").json()["total"] == 0
