"""The official SDK, unchanged, under this server's guardrails and golden baselines."""

from __future__ import annotations

import re
import time
from typing import Any

from tests.enforcement.sdk_support import agent_env, finish, run_agent, start_agent
from tests.fakes.llm_server import FakeLLMServer
from tests.support.server import ApiUser, RunningServer

POLICIES = "/api/v1/enforcement/policies"
HOLDS = "/api/v1/enforcement/holds"


def _policy(user: ApiUser, **body: Any) -> dict[str, Any]:
    r = user.client.post(POLICIES, json={"name": "guard", **body})
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


def _trace(user: ApiUser, trace_id: str) -> dict[str, Any]:
    r = user.client.get(f"/api/v1/traces/{trace_id}")
    assert r.status_code == 200, r.text
    trace: dict[str, Any] = r.json()
    return trace


def test_a_run_over_its_dollar_ceiling_stops_before_its_next_call(
    server: RunningServer, alice: ApiUser
) -> None:
    ceiling = 0.0004
    policy = _policy(alice, kind="run_budget", max_usd=ceiling)
    with FakeLLMServer() as llm:
        result = run_agent(agent_env(server, alice, llm.url), "spend")
        calls = len(llm.requests)
    assert result["outcome"] == "stopped", result
    assert (result["verdict"], result["policy_id"]) == ("block", policy["id"])
    counted = float(re.search(r"the run cost \$([0-9.]+)", result["reason"]).group(1))  # type: ignore[union-attr]
    assert counted > ceiling and "over max_usd $0.0004" in result["reason"]
    trace = _trace(alice, result["trace_id"])
    assert trace["status"] == "failed"
    llm_spans = [s for s in trace["spans"] if s["span_type"] == "llm_call"]
    # Every call the agent made was recorded, and it stopped right after the one that crossed the
    # line (whose span the SDK records again with the enforcement error, without its cost).
    assert 1 < calls == len(llm_spans) < 10
    assert sum(s["cost"] for s in llm_spans[:-1]) <= ceiling
    assert "Enforcement block" in llm_spans[-1]["error"]


def test_a_looping_agent_is_stopped(server: RunningServer, alice: ApiUser) -> None:
    policy = _policy(alice, kind="tool_loop", max_repeats=3)
    with FakeLLMServer() as llm:
        result = run_agent(agent_env(server, alice, llm.url), "loop")
        calls = len(llm.requests)
    assert (result["outcome"], result["policy_id"]) == ("stopped", policy["id"]), result
    assert "'search' was called 4 times with the same arguments" in result["reason"]
    assert calls == 4
    spans = _trace(alice, result["trace_id"])["spans"]
    assert [s["name"] for s in spans if s["span_type"] == "tool_call"] == ["search"] * 4


def _pending_hold(user: ApiUser, agent: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pending = user.client.get(HOLDS, params={"status": "pending"}).json()["data"]
        if pending:
            hold: dict[str, Any] = pending[0]
            return hold
        assert agent.poll() is None, agent.communicate()
        time.sleep(0.1)
    raise AssertionError("the agent never asked for approval")


def test_an_approval_holds_the_agent_until_a_person_approves(server: RunningServer, alice: ApiUser) -> None:
    policy = _policy(alice, kind="tool_approval", tools=["refund_order"])
    with FakeLLMServer() as llm:
        env = agent_env(server, alice, llm.url, RETRACE_ENFORCEMENT_HOLD_WAIT_SECONDS="20")
        agent = start_agent(env, "tools", "lookup_order,refund_order")
        hold = _pending_hold(alice, agent)
        assert (hold["policy_id"], hold["tool_name"], hold["kind"]) == (
            policy["id"],
            "refund_order",
            "tool_approval",
        )
        # Held: the model asked for the refund, and nothing has run since.
        assert agent.poll() is None
        assert len(llm.requests) == 2
        r = alice.client.post(f"{HOLDS}/{hold['id']}/approve", json={"note": "refund approved"})
        assert r.status_code == 200, r.text
        result, _ = finish(agent)
        calls = len(llm.requests)
    assert result["outcome"] == "finished", result
    assert calls == 3
    trace = _trace(alice, result["trace_id"])
    assert trace["status"] == "completed"
    assert hold["run_id"] == result["trace_id"]
    assert [s["name"] for s in trace["spans"] if s["span_type"] == "tool_call"] == [
        "lookup_order",
        "refund_order",
    ]


def test_a_denied_hold_stops_the_agent(server: RunningServer, alice: ApiUser) -> None:
    _policy(alice, kind="tool_approval", tools=["refund_order"])
    with FakeLLMServer() as llm:
        env = agent_env(server, alice, llm.url, RETRACE_ENFORCEMENT_HOLD_WAIT_SECONDS="20")
        agent = start_agent(env, "tools", "refund_order")
        hold = _pending_hold(alice, agent)
        alice.client.post(f"{HOLDS}/{hold['id']}/deny", json={"note": "not this one"})
        result, _ = finish(agent)
        calls = len(llm.requests)
    assert (result["outcome"], result["verdict"]) == ("stopped", "hold"), result
    assert "denied" in result["reason"]
    assert calls == 1
    assert _trace(alice, result["trace_id"])["status"] == "failed"


def test_mark_golden_then_an_identical_run_passes_and_a_changed_one_regresses(
    server: RunningServer, alice: ApiUser
) -> None:
    with FakeLLMServer() as llm:
        env = agent_env(server, alice, llm.url)
        baseline = run_agent(env, "tools", "lookup_order")
        assert run_agent(env, "golden", baseline["trace_id"]) == {"marked": baseline["trace_id"]}
        same = run_agent(env, "tools", "lookup_order")
        changed = run_agent(env, "tools", "lookup_order,refund_order")
    assert alice.client.get(f"/api/v1/traces/{baseline['trace_id']}/golden").json()["golden"] is True

    report = alice.client.get(f"/api/v1/traces/{same['trace_id']}/regression").json()
    assert (report["verdict"], report["baseline_trace_id"]) == ("pass", baseline["trace_id"]), report
    report = alice.client.get(f"/api/v1/traces/{changed['trace_id']}/regression").json()
    assert report["verdict"] == "regressed", report
    assert report["totals"]["run"]["tool_calls"] == ["lookup_order", "refund_order"]
    assert "tool_sequence" in {f["kind"] for f in report["findings"]}


def test_mark_golden_of_an_unknown_trace_fails_in_the_sdk(server: RunningServer, alice: ApiUser) -> None:
    with FakeLLMServer() as llm:
        agent = start_agent(agent_env(server, alice, llm.url), "golden", "no-such-trace")
        _, stderr = agent.communicate(timeout=60)
    assert agent.returncode != 0
    assert "mark_golden failed: HTTP 404" in stderr
