"""Replays that outlive their request: 202, completion in the background, shutdown, settings."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from retrace_server.config import Settings
from tests.fakes.llm_server import GATE_MARKER, FakeLLMServer
from tests.forks.agent import run_travel_agent
from tests.forks.conftest import provider_settings, wait_until_finished
from tests.support.server import create_user, running_server


def test_slow_replay_answers_202_then_completes(make_settings: Callable[..., Settings]) -> None:
    with (
        FakeLLMServer() as llm,
        running_server(make_settings(replay_wait_s=0.2, **provider_settings(llm))) as srv,
    ):
        user = create_user(srv)
        trace = run_travel_agent(user, llm)
        fork = user.client.post(
            "/api/v1/forks",
            json={
                "trace_id": trace["id"],
                "span_id": trace["spans"][0]["id"],
                "modified_input": f"{GATE_MARKER} Oslo?",
            },
        ).json()
        r = user.client.post(f"/api/v1/forks/{fork['id']}/replay")
        assert r.status_code == 202, r.text
        running = r.json()
        assert running["status"] == "running" and running["result_trace_id"] is not None
        again = user.client.post(f"/api/v1/forks/{fork['id']}/replay")
        assert again.status_code == 409 and "already replaying" in again.json()["error"]
        assert user.client.get(f"/api/v1/traces/{running['result_trace_id']}").json()["status"] == "running"

        llm.gate.set()
        done = wait_until_finished(user, fork["id"])
        assert done["status"] == "completed", done
        result = user.client.get(f"/api/v1/traces/{done['result_trace_id']}").json()
        assert result["status"] == "completed" and len(result["spans"]) == 4
        assert GATE_MARKER in result["spans"][0]["output"]


def test_shutdown_marks_a_running_replay_failed(make_settings: Callable[..., Settings]) -> None:
    with FakeLLMServer() as llm:
        settings = make_settings(replay_wait_s=0.2, **provider_settings(llm))
        with running_server(settings) as srv:
            user = create_user(srv)
            trace = run_travel_agent(user, llm)
            fork = user.client.post(
                "/api/v1/forks",
                json={
                    "trace_id": trace["id"],
                    "span_id": trace["spans"][2]["id"],
                    "modified_input": GATE_MARKER,
                },
            ).json()
            assert user.client.post(f"/api/v1/forks/{fork['id']}/replay").status_code == 202
        llm.gate.set()
        with running_server(settings) as restarted:
            client = httpx.Client(base_url=restarted.url, headers={"x-retrace-key": user.key}, timeout=60)
            after = client.get(f"/api/v1/forks/{fork['id']}").json()
            assert after["status"] == "failed" and "stopped" in after["error"]
            assert after["runs"][0]["status"] == "failed"
            result = client.get(f"/api/v1/traces/{after['result_trace_id']}").json()
            assert result["status"] == "failed"
            assert [s["metadata"]["replay"] for s in result["spans"]] == ["recorded", "recorded"]
            r = client.post(f"/api/v1/forks/{fork['id']}/replay", json={"modified_input": "Oslo?"})
            assert r.status_code in (200, 202), r.text
            assert wait_until_finished(client, fork["id"])["status"] == "completed"
            client.close()


def test_missing_key_fails_naming_the_setting(make_settings: Callable[..., Settings]) -> None:
    with FakeLLMServer() as llm:
        settings = {**provider_settings(llm), "anthropic_api_key": None}
        with running_server(make_settings(**settings)) as srv:
            user = create_user(srv)
            trace = run_travel_agent(user, llm, provider="anthropic", model="claude-3-5-haiku-latest")
            fork = user.client.post(
                "/api/v1/forks", json={"trace_id": trace["id"], "span_id": trace["spans"][0]["id"]}
            ).json()
            start = len(llm.requests)
            r = user.client.post(f"/api/v1/forks/{fork['id']}/replay")
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "failed"
            assert "RETRACE_ANTHROPIC_API_KEY" in r.json()["error"]
            assert len(llm.requests) == start
