"""The official SDK, unchanged and in its default WebSocket mode, streams runs into the server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from retrace_server.config import Settings
from tests.fakes.llm_server import FakeLLMServer
from tests.stream.proxy import TcpProxy
from tests.stream.support import AgentProcess, get_trace, wait_until
from tests.support.server import ApiUser, RunningServer, running_server

STEPS = 4
INCOMPLETE_WARNINGS = ("INCOMPLETE", "not confirmed", "could not be delivered", "signal")


def assert_whole_run(trace: dict[str, Any], *, steps: int) -> None:
    spans = trace["spans"]
    assert trace["status"] == "completed"
    assert trace["ended_at"] is not None
    assert len(spans) == 2 * steps
    assert len({s["id"] for s in spans}) == len(spans)
    llm_calls = [s for s in spans if s["span_type"] == "llm_call"]
    tools = [s for s in spans if s["span_type"] == "tool_call"]
    assert [t["input"] for t in tools] == [{"step": i} for i in range(steps)]
    assert all(t["output"]["hits"] == i + 1 for i, t in enumerate(tools))
    assert all(s["ended_at"] is not None and s["duration_ms"] is not None for s in spans)
    assert all(s["model"] == "gpt-4o-mini" and s["output_tokens"] for s in llm_calls)
    assert trace["span_count"] == 2 * steps
    assert trace["total_tokens"] == sum(s["input_tokens"] + s["output_tokens"] for s in llm_calls)


def finish_cleanly(agent: AgentProcess) -> dict[str, Any]:
    done = agent.next_message()
    assert agent.finish() == 0, agent.stderr
    assert done["acknowledged"] is True, agent.stderr
    assert not any(w in agent.stderr for w in INCOMPLETE_WARNINGS), agent.stderr
    return done


def test_recorded_run_lands_whole_with_every_frame_acknowledged(
    server: RunningServer, alice: ApiUser
) -> None:
    with FakeLLMServer() as llm:
        agent = AgentProcess(
            "run", "--steps", str(STEPS), base_url=server.url, api_key=alice.key, llm_url=llm.url
        )
        trace_id = agent.next_message()["trace_id"]
        done = finish_cleanly(agent)

    trace = get_trace(alice.client, trace_id)
    assert trace is not None
    assert trace["name"] == "docs-researcher"
    assert trace["output"] == done["answer"]
    assert trace["input"]["args"] == ["How do refunds work?"]
    assert_whole_run(trace, steps=STEPS)


def test_trace_is_readable_while_the_run_streams(server: RunningServer, alice: ApiUser) -> None:
    with FakeLLMServer() as llm:
        agent = AgentProcess(
            "run",
            "--steps",
            "3",
            "--pause-after",
            "2",
            base_url=server.url,
            api_key=alice.key,
            llm_url=llm.url,
        )
        trace_id = agent.next_message()["trace_id"]
        assert agent.next_message() == {"paused": 2}
        running = wait_until(
            lambda: (t := get_trace(alice.client, trace_id)) and t["span_count"] == 4 and t,
            what="the first two steps to be readable",
        )
        assert running["status"] == "running"
        assert running["ended_at"] is None
        assert [s["name"] for s in running["spans"]][1::2] == ["search_docs", "search_docs"]
        assert alice.client.get("/api/v1/traces", params={"status": "running"}).json()["total"] >= 1
        agent.proceed()
        finish_cleanly(agent)

    trace = get_trace(alice.client, trace_id)
    assert trace is not None
    assert_whole_run(trace, steps=3)


def test_killed_connection_and_reconnection_to_another_process_lose_and_duplicate_nothing(
    server: RunningServer, alice: ApiUser, make_settings: Callable[..., Settings]
) -> None:
    """Acknowledgements of stored frames are lost with the connection, so the SDK re-sends them."""
    with running_server(make_settings()) as other, FakeLLMServer() as llm, TcpProxy(server.url) as proxy:
        agent = AgentProcess(
            "run",
            "--steps",
            str(STEPS),
            "--pause-after",
            "1",
            "--pause-after",
            "2",
            base_url=proxy.url,
            api_key=alice.key,
            llm_url=llm.url,
        )
        trace_id = agent.next_message()["trace_id"]
        assert agent.next_message() == {"paused": 1}
        # Once step 1 is stored the SDK has its connection (it sends frames only after `auth_ok`).
        wait_until(
            lambda: (t := get_trace(alice.client, trace_id)) and t["span_count"] == 2,
            what="step 1 to be stored",
        )
        proxy.hold_replies()
        agent.proceed()
        assert agent.next_message() == {"paused": 2}
        # Step 2 is stored, but its acknowledgements never reach the client.
        wait_until(
            lambda: (t := get_trace(alice.client, trace_id)) and t["span_count"] == 4,
            what="step 2 to be stored",
        )
        proxy.retarget(other.url)
        proxy.cut()
        agent.proceed()
        finish_cleanly(agent)
        assert proxy.connections >= 2

    trace = get_trace(alice.client, trace_id)
    assert trace is not None
    assert_whole_run(trace, steps=STEPS)


def test_streams_of_several_users_stay_apart(server: RunningServer, alice: ApiUser, bob: ApiUser) -> None:
    with FakeLLMServer() as llm:
        runs = {
            user.id: AgentProcess(
                "run", "--steps", "2", base_url=server.url, api_key=user.key, llm_url=llm.url
            )
            for user in (alice, bob)
        }
        trace_ids = {uid: agent.next_message()["trace_id"] for uid, agent in runs.items()}
        for agent in runs.values():
            finish_cleanly(agent)

    assert get_trace(alice.client, trace_ids[bob.id]) is None
    assert get_trace(bob.client, trace_ids[alice.id]) is None
    for user in (alice, bob):
        trace = get_trace(user.client, trace_ids[user.id])
        assert trace is not None
        assert_whole_run(trace, steps=2)
