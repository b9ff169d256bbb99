"""Cascade replay: a fork re-run by the live agent (the official SDK) that recorded the trace."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from retrace_server.config import Settings
from tests.fakes.llm_server import FakeLLMServer
from tests.stream.support import AgentProcess, get_trace
from tests.support.server import ApiUser, RunningServer, running_server

STEPS = 3
NEW_QUESTION = "How do returns work?"


@pytest.fixture
def llm() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


@pytest.fixture
def connected_agent(server: RunningServer, alice: ApiUser, llm: FakeLLMServer) -> Iterator[str]:
    """A resumable agent of alice's, connected after recording one run; yields that run's trace id."""
    agent = AgentProcess(
        "agent",
        "--steps",
        str(STEPS),
        base_url=server.url,
        api_key=alice.key,
        llm_url=llm.url,
        RETRACE_ALLOW_REMOTE_REPLAY="true",
    )
    try:
        trace_id = agent.next_message()["trace_id"]
        assert agent.next_message() == {"ready": True, "acknowledged": True}
        yield trace_id
        assert agent.finish() == 0, agent.stderr
        assert "Cascade replay failed" not in agent.stderr, agent.stderr
    finally:
        agent.kill()


def fork_at_second_llm_call(user: ApiUser, trace_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    original = get_trace(user.client, trace_id)
    assert original is not None
    fork_point = [s for s in original["spans"] if s["span_type"] == "llm_call"][1]
    r = user.client.post(
        "/api/v1/forks",
        json={
            "trace_id": trace_id,
            "span_id": fork_point["id"],
            "modified_input": NEW_QUESTION,
        },
    )
    assert r.status_code == 201, r.text
    return r.json(), original


def assert_linked_replay(user: ApiUser, fork: dict[str, Any], original: dict[str, Any]) -> dict[str, Any]:
    assert fork["status"] == "completed", fork
    (run,) = fork["runs"]
    assert run["claimed_at"] is not None  # the SDK claimed its execution before running
    assert run["result_trace_id"] == fork["result_trace_id"]
    result = get_trace(user.client, fork["result_trace_id"])
    assert result is not None
    assert result["name"] == "Fork: docs-researcher"
    assert result["status"] == "completed"
    assert result["metadata"]["fork_id"] == fork["id"]
    assert result["metadata"]["execution_id"] == run["execution_id"]
    spans = result["spans"]
    # The first LLM call comes from the recording; the agent re-ran everything from the fork point.
    first = spans[0]
    assert first["metadata"]["replay"] == "recorded"
    assert first["output"] == original["spans"][0]["output"]
    assert len(spans) == len(original["spans"]) == result["span_count"]
    assert result["total_tokens"] == sum((s["input_tokens"] or 0) + (s["output_tokens"] or 0) for s in spans)
    rerun = [s for s in spans[1:] if s["span_type"] == "llm_call"]
    assert len(rerun) == STEPS - 1
    assert all(NEW_QUESTION in s["output"] for s in rerun)
    assert NEW_QUESTION in result["output"]
    return result


def test_agent_mode_without_a_connected_agent_is_a_conflict(server: RunningServer, alice: ApiUser) -> None:
    trace_id = str(uuid.uuid4())
    span = {"id": "s1", "span_type": "llm_call", "name": "call", "model": "gpt-4o-mini", "input": "hi"}
    assert (
        alice.client.post(
            "/api/v1/traces", json={"id": trace_id, "name": "lonely", "spans": [span]}
        ).status_code
        == 201
    )
    fork = alice.client.post("/api/v1/forks", json={"trace_id": trace_id, "span_id": "s1"}).json()
    r = alice.client.post(f"/api/v1/forks/{fork['id']}/replay", json={"mode": "agent"})
    assert r.status_code == 409
    assert r.json()["error"].startswith("No agent is connected for trace 'lonely'")
    assert alice.client.get(f"/api/v1/forks/{fork['id']}").json()["status"] == "created"


def test_connected_agent_replays_the_fork_and_its_trace_is_linked_and_diffable(
    alice: ApiUser, connected_agent: str, llm: FakeLLMServer
) -> None:
    fork, original = fork_at_second_llm_call(alice, connected_agent)
    calls_before = len(llm.requests)

    # No mode: with an agent connected for the trace's name, the agent replays it.
    r = alice.client.post(f"/api/v1/forks/{fork['id']}/replay", json={})
    assert r.status_code == 200, r.text
    assert_linked_replay(alice, r.json(), original)
    assert len(llm.requests) - calls_before == STEPS  # the agent's own calls, none by the server

    diff = alice.client.get(f"/api/v1/forks/{fork['id']}/diff")
    assert diff.status_code == 200, diff.text
    assert diff.json()["fork_id"] == fork["id"]


def test_replay_sent_through_another_process_reaches_the_agent(
    alice: ApiUser, connected_agent: str, make_settings: Callable[..., Settings]
) -> None:
    fork, original = fork_at_second_llm_call(alice, connected_agent)
    with running_server(make_settings()) as other:
        r = alice.client.post(f"{other.url}/api/v1/forks/{fork['id']}/replay", json={"mode": "agent"})
    assert r.status_code == 200, r.text
    assert_linked_replay(alice, r.json(), original)


def test_a_superseded_execution_cannot_deliver_its_result(alice: ApiUser, connected_agent: str) -> None:
    fork, _ = fork_at_second_llm_call(alice, connected_agent)
    first = alice.client.post(f"/api/v1/forks/{fork['id']}/replay", json={"mode": "agent"}).json()
    second = alice.client.post(f"/api/v1/forks/{fork['id']}/replay", json={"mode": "agent"}).json()
    assert second["status"] == "completed"
    stale_execution = first["runs"][0]["execution_id"]

    claim = alice.client.post(
        f"/api/v1/forks/{fork['id']}/replay/claim", json={"execution_id": stale_execution}
    )
    assert claim.status_code == 409
    late = alice.client.post(
        "/api/v1/traces",
        json={
            "name": "Fork: docs-researcher",
            "status": "completed",
            "metadata": {
                "_fork_id": fork["id"],
                "_fork_execution_id": stale_execution,
                "_cascade_replay": True,
            },
        },
    )
    assert late.status_code == 409
    assert "no longer current" in late.json()["error"]
    latest = alice.client.get(f"/api/v1/forks/{fork['id']}").json()
    assert latest["result_trace_id"] == second["result_trace_id"]
