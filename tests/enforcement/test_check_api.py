"""`POST /api/v1/enforcement/check`: counting a run's steps and answering each policy kind."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

from tests.support.server import ApiUser

POLICIES = "/api/v1/enforcement/policies"
CHECK = "/api/v1/enforcement/check"
HOLDS = "/api/v1/enforcement/holds"


def _policy(user: ApiUser, **body: Any) -> dict[str, Any]:
    r = user.client.post(POLICIES, json={"name": body.pop("name", "guard"), **body})
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


def _check(user: ApiUser, run_id: str, **body: Any) -> dict[str, Any]:
    r = user.client.post(CHECK, json={"run_id": run_id, **body})
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def _run() -> str:
    return str(uuid.uuid4())


def _span() -> str:
    return str(uuid.uuid4())


def test_without_policies_every_step_is_allowed(alice: ApiUser) -> None:
    answer = _check(alice, _run(), proposed_tokens=10**9, proposed_usd=10**6)
    assert answer == {"verdict": "allow", "reason": None, "policy_id": None, "hold_id": None, "usage": None}


def test_run_budget_counts_each_span_once_and_blocks_past_the_ceiling(alice: ApiUser) -> None:
    policy = _policy(alice, kind="run_budget", max_tokens=100, max_usd=0.05)
    run, first = _run(), _span()
    assert _check(alice, run, span_id=first, proposed_tokens=60, proposed_usd=0.01)["usage"] == {
        "steps": 1,
        "tokens": 60,
        "usd": 0.01,
    }
    # The same span again (ingestion, a retry) is not counted twice; what it reports beyond is.
    again = _check(alice, run, span_id=first, proposed_tokens=60, proposed_usd=0.02)
    assert again["verdict"] == "allow" and again["usage"] == {"steps": 1, "tokens": 60, "usd": 0.02}
    assert _check(alice, run, span_id=_span(), proposed_tokens=40)["verdict"] == "allow"
    blocked = _check(alice, run, span_id=_span(), proposed_tokens=1)
    assert blocked["verdict"] == "block" and blocked["policy_id"] == policy["id"]
    assert "101 tokens" in blocked["reason"] and "max_tokens 100" in blocked["reason"]
    # Other runs have budgets of their own.
    assert _check(alice, _run(), span_id=_span(), proposed_tokens=99)["verdict"] == "allow"


def test_run_budget_on_dollars_and_steps(alice: ApiUser) -> None:
    _policy(alice, kind="run_budget", max_usd=0.01, max_steps=3)
    dollars = _run()
    assert _check(alice, dollars, span_id=_span(), proposed_usd=0.006)["verdict"] == "allow"
    answer = _check(alice, dollars, span_id=_span(), proposed_usd=0.006)
    assert answer["verdict"] == "block" and "max_usd $0.01" in answer["reason"]
    steps = _run()
    verdicts = [_check(alice, steps)["verdict"] for _ in range(4)]
    assert verdicts == ["allow", "allow", "allow", "block"]


def test_period_budget_adds_up_runs_of_the_day(alice: ApiUser, bob: ApiUser) -> None:
    policy = _policy(alice, kind="period_budget", period="day", max_usd=0.05)
    assert _check(alice, _run(), span_id=_span(), proposed_usd=0.03)["verdict"] == "allow"
    answer = _check(alice, _run(), span_id=_span(), proposed_usd=0.03)
    assert answer["verdict"] == "block" and answer["policy_id"] == policy["id"]
    assert "today" in answer["reason"]
    assert _check(bob, _run(), span_id=_span(), proposed_usd=0.03)["verdict"] == "allow"


def test_tool_loop_blocks_the_same_call_repeated(alice: ApiUser) -> None:
    _policy(alice, kind="tool_loop", max_repeats=2)
    run = _run()
    same = {"tool_name": "search", "tool_args_hash": "abc"}
    assert _check(alice, run, span_id=_span(), **same)["verdict"] == "allow"
    assert _check(alice, run, span_id=_span(), **same)["verdict"] == "allow"
    assert (
        _check(alice, run, span_id=_span(), tool_name="search", tool_args_hash="other")["verdict"] == "allow"
    )
    answer = _check(alice, run, span_id=_span(), **same)
    assert answer["verdict"] == "block" and "called 3 times" in answer["reason"]


def test_tool_deny(alice: ApiUser) -> None:
    _policy(alice, kind="tool_deny", tools=["drop_table", "rm"])
    run = _run()
    assert _check(alice, run, tool_name="select")["verdict"] == "allow"
    answer = _check(alice, run, tool_name="drop_table")
    assert answer["verdict"] == "block" and "'drop_table' is denied" in answer["reason"]


def test_policies_apply_only_to_their_project_and_trace_name(alice: ApiUser) -> None:
    _policy(alice, kind="tool_deny", tools=["rm"], project_id="ops")
    named = _policy(alice, kind="tool_deny", tools=["mv"], trace_name="cleanup-agent")
    assert _check(alice, _run(), tool_name="rm", project_id="web")["verdict"] == "allow"
    assert _check(alice, _run(), tool_name="rm", project_id="ops")["verdict"] == "block"
    assert _check(alice, _run(), tool_name="rm")["verdict"] == "allow"

    # A trace name is known once the server has the trace.
    run = _run()
    assert _check(alice, run, tool_name="mv")["verdict"] == "allow"
    created = alice.client.post(
        "/api/v1/traces", json={"id": run, "name": "cleanup-agent", "started_at": "2026-12-01T10:00:00Z"}
    )
    assert created.status_code == 201
    answer = _check(alice, run, tool_name="mv")
    assert answer["verdict"] == "block" and answer["policy_id"] == named["id"]
    other = _run()
    alice.client.post(
        "/api/v1/traces", json={"id": other, "name": "other", "started_at": "2026-12-01T10:00:00Z"}
    )
    assert _check(alice, other, tool_name="mv")["verdict"] == "allow"
    # A stored trace's project scopes its run too.
    tagged = _run()
    alice.client.post(
        "/api/v1/traces",
        json={"id": tagged, "name": "x", "project_id": "ops", "started_at": "2026-12-01T10:00:00Z"},
    )
    assert _check(alice, tagged, tool_name="rm")["verdict"] == "block"


def test_policy_changes_apply_to_the_next_check(alice: ApiUser) -> None:
    policy = _policy(alice, kind="tool_deny", tools=["rm"], enabled=False)
    run = _run()
    assert _check(alice, run, tool_name="rm")["verdict"] == "allow"
    alice.client.patch(f"{POLICIES}/{policy['id']}", json={"enabled": True})
    assert _check(alice, run, tool_name="rm")["verdict"] == "block"
    alice.client.patch(f"{POLICIES}/{policy['id']}", json={"tools": ["mv"]})
    assert _check(alice, run, tool_name="rm")["verdict"] == "allow"
    alice.client.delete(f"{POLICIES}/{policy['id']}")
    assert _check(alice, run, tool_name="mv")["verdict"] == "allow"


def test_approval_holds_each_call_until_a_person_decides(alice: ApiUser, bob: ApiUser) -> None:
    policy = _policy(alice, kind="tool_approval", tools=["refund"])
    run, call = _run(), _span()
    answer = _check(alice, run, span_id=call, tool_name="refund", tool_args_hash="h1")
    assert answer["verdict"] == "hold" and answer["policy_id"] == policy["id"]
    hold_id = answer["hold_id"]
    assert _check(alice, run, span_id=call, tool_name="refund")["hold_id"] == hold_id
    hold = alice.client.get(f"{HOLDS}/{hold_id}").json()
    assert (hold["status"], hold["verdict"], hold["run_id"], hold["span_id"], hold["tool_name"]) == (
        "pending",
        "hold",
        run,
        call,
        "refund",
    )
    pending = alice.client.get(HOLDS, params={"status": "pending"}).json()
    assert [h["id"] for h in pending["data"]] == [hold_id]

    # Another user's hold does not exist for them.
    for method, path in (("GET", f"{HOLDS}/{hold_id}"), ("POST", f"{HOLDS}/{hold_id}/approve")):
        r = bob.client.request(method, path)
        assert r.status_code == 404 and r.json() == {"error": "Hold not found"}
    assert bob.client.get(HOLDS).json()["total"] == 0

    approved = alice.client.post(f"{HOLDS}/{hold_id}/approve", json={"note": "customer verified"})
    assert approved.status_code == 200, approved.text
    assert (approved.json()["status"], approved.json()["verdict"], approved.json()["note"]) == (
        "approved",
        "allow",
        "customer verified",
    )
    assert approved.json()["decided_at"] is not None
    assert _check(alice, run, span_id=call, tool_name="refund")["verdict"] == "allow"
    r = alice.client.post(f"{HOLDS}/{hold_id}/deny")
    assert r.status_code == 409 and "already approved" in r.json()["error"]

    # The next call is a new question; denying it blocks the run there.
    second = _check(alice, run, span_id=_span(), tool_name="refund")
    assert second["verdict"] == "hold" and second["hold_id"] != hold_id
    denied = alice.client.post(f"{HOLDS}/{second['hold_id']}/deny")
    assert denied.json()["status"] == "denied"
    assert alice.client.get(HOLDS, params={"status": "pending"}).json()["total"] == 0
    assert alice.client.get(HOLDS, params={"status": "denied", "run_id": run}).json()["total"] == 1
    r = alice.client.post(f"{HOLDS}/{second['hold_id']}/approve", json={"reason": "x"})
    assert r.status_code == 400 and r.json()["error"].startswith("reason:")


def test_a_denied_hold_blocks_the_call_it_was_about(alice: ApiUser) -> None:
    _policy(alice, kind="tool_approval", tools=["wire_money"])
    run, call = _run(), _span()
    hold_id = _check(alice, run, span_id=call, tool_name="wire_money")["hold_id"]
    alice.client.post(f"{HOLDS}/{hold_id}/deny", json={"note": "no"})
    answer = _check(alice, run, span_id=call, tool_name="wire_money")
    assert answer["verdict"] == "block" and "denied" in answer["reason"]


def _wait_for_status(user: ApiUser, hold_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        hold: dict[str, Any] = user.client.get(f"{HOLDS}/{hold_id}").json()
        if hold["status"] == status or time.monotonic() > deadline:
            return hold
        time.sleep(0.2)


def test_a_hold_nobody_decides_expires_into_its_default(alice: ApiUser) -> None:
    _policy(alice, name="lenient", kind="tool_approval", tools=["notify"], timeout_s=1, on_timeout="allow")
    _policy(alice, name="strict", kind="tool_approval", tools=["delete"], timeout_s=1)
    run = _run()
    lenient_call, strict_call = _span(), _span()
    lenient = _check(alice, run, span_id=lenient_call, tool_name="notify")["hold_id"]
    strict = _check(alice, run, span_id=strict_call, tool_name="delete")["hold_id"]
    assert _wait_for_status(alice, lenient, "expired")["verdict"] == "allow"
    assert _wait_for_status(alice, strict, "expired")["verdict"] == "block"
    assert _check(alice, run, span_id=lenient_call, tool_name="notify")["verdict"] == "allow"
    assert _check(alice, run, span_id=strict_call, tool_name="delete")["verdict"] == "block"
    r = alice.client.post(f"{HOLDS}/{lenient}/approve")
    assert r.status_code == 409 and "expired" in r.json()["error"]
    assert alice.client.get(HOLDS, params={"status": "expired"}).json()["total"] == 2


def test_budget_with_action_hold_asks_once_per_run(alice: ApiUser) -> None:
    policy = _policy(alice, kind="run_budget", max_steps=1, action="hold", timeout_s=600)
    run = _run()
    assert _check(alice, run)["verdict"] == "allow"
    held = _check(alice, run)
    assert held["verdict"] == "hold" and held["policy_id"] == policy["id"]
    assert _check(alice, run)["hold_id"] == held["hold_id"]
    alice.client.post(f"{HOLDS}/{held['hold_id']}/approve")
    assert [_check(alice, run)["verdict"] for _ in range(3)] == ["allow"] * 3
    assert _check(alice, _run())["verdict"] == "allow"


def test_block_wins_over_hold(alice: ApiUser) -> None:
    _policy(alice, name="ask", kind="tool_approval", tools=["refund"])
    deny = _policy(alice, name="never", kind="tool_deny", tools=["refund"])
    answer = _check(alice, _run(), tool_name="refund")
    assert (answer["verdict"], answer["policy_id"], answer["hold_id"]) == ("block", deny["id"], None)
    assert alice.client.get(HOLDS).json()["total"] == 0


def test_bad_check_bodies_answer_400(alice: ApiUser) -> None:
    _policy(alice, kind="run_budget", max_steps=1)
    for body, field in (
        ({"proposed_tokens": 5}, "run_id"),
        ({"run_id": "r", "proposed_tokens": -1}, "proposed_tokens"),
        ({"run_id": "r", "proposed_usd": -0.5}, "proposed_usd"),
        ({"run_id": ""}, "run_id"),
    ):
        r = alice.client.post(CHECK, json=body)
        assert r.status_code == 400 and r.json()["error"].startswith(f"{field}:"), r.text
    # Fields a later SDK may add are ignored.
    assert _check(alice, _run(), sdk_extra=True)["verdict"] == "allow"


def test_internal_logs_accepts_sdk_diagnostics_and_keeps_nothing(server: Any) -> None:
    r = httpx.post(
        f"{server.url}/api/v1/internal/logs",
        json={"service": "sdk-python", "events": [{"level": "info", "event": "sdk_init"}]},
    )
    assert r.status_code == 204 and r.content == b""
