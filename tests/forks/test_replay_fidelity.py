"""A server replay sends each step as the provider first received it.

Tool-using agents are recorded by the official `retrace` client (against this server) while they
talk to the fake provider through the official `openai` and `anthropic` clients; the fake refuses
what the real APIs refuse (a tool result without the call it answers, calls left unanswered).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.llm_server import FakeLLMServer, answer_for, canonical_request, digest_of
from tests.support.server import ApiUser, RunningServer, create_user

AGENT = Path(__file__).with_name("sdk_agent.py")
PROVIDERS = ["openai", "anthropic"]


@pytest.fixture(scope="module")
def erin(fork_server: RunningServer) -> ApiUser:
    return create_user(fork_server)


def record_agent(
    server: RunningServer, user: ApiUser, llm: FakeLLMServer, provider: str, *, question: str, tools: int = 2
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the trace the official SDK recorded, the request bodies the agent sent the provider)."""
    env = {
        **os.environ,
        "RETRACE_BASE_URL": server.url,
        "RETRACE_API_KEY": user.key,
        "RETRACE_TRANSPORT": "http",
        "RETRACE_TELEMETRY": "0",
        "FAKE_LLM_URL": llm.url,
    }
    start = len(llm.requests)
    done = subprocess.run(
        [sys.executable, str(AGENT), provider, question, str(tools)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    trace_id = json.loads(done.stdout.strip().splitlines()[-1])["trace_id"]
    r = user.client.get(f"/api/v1/traces/{trace_id}")
    assert r.status_code == 200, r.text
    return r.json(), [c["body"] for c in llm.requests[start:]]


@pytest.fixture(scope="module")
def recorded(
    fork_server: RunningServer, erin: ApiUser, llm: FakeLLMServer
) -> Iterator[dict[str, tuple[dict[str, Any], list[dict[str, Any]]]]]:
    yield {
        provider: record_agent(fork_server, erin, llm, provider, question="Is it warm in Paris?")
        for provider in PROVIDERS
    }


def _fork_and_replay(user: ApiUser, trace: dict[str, Any], step: int, **changes: Any) -> dict[str, Any]:
    r = user.client.post(
        "/api/v1/forks",
        json={"trace_id": trace["id"], "fork_point_span_id": trace["spans"][step]["id"], **changes},
    )
    assert r.status_code == 201, r.text
    r = user.client.post(f"/api/v1/forks/{r.json()['id']}/replay")
    assert r.status_code == 200, r.text
    return r.json()


def _kinds(trace: dict[str, Any]) -> list[tuple[str, str]]:
    return [(s["span_type"], s["name"]) for s in trace["spans"]]


def _tool_ids(body: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(ids of the calls the conversation makes, ids its tool results answer), in either protocol."""
    calls, results = [], []
    for message in body["messages"]:
        calls += [c["id"] for c in message.get("tool_calls") or []]
        if message.get("tool_call_id"):
            results.append(message["tool_call_id"])
        for block in message["content"] if isinstance(message["content"], list) else []:
            if block.get("type") == "tool_use":
                calls.append(block["id"])
            if block.get("type") == "tool_result":
                results.append(block["tool_use_id"])
    return calls, results


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_fork_that_changes_nothing_resends_every_step_exactly(
    provider: str, recorded: dict[str, Any], erin: ApiUser, llm: FakeLLMServer
) -> None:
    trace, sent = recorded[provider]
    llm_steps = [s for s in trace["spans"] if s["span_type"] == "llm_call"]
    assert len(llm_steps) == 3 and len(sent) == 3
    assert sum(1 for s in trace["spans"] if s["span_type"] == "tool_call") == 2
    assert any(b.get("tools") for b in sent), "the agent offered tools"

    start = len(llm.requests)
    done = _fork_and_replay(erin, trace, 0)
    assert done["status"] == "completed", done
    replayed = [c["body"] for c in llm.requests[start:]]
    assert [canonical_request(b) for b in replayed] == [canonical_request(b) for b in sent]
    for original, again in zip(sent, replayed, strict=True):
        for option in ("temperature", "seed", "max_tokens"):
            assert again.get(option) == original.get(option), option
    assert "max_tokens" in replayed[0] and replayed[0]["temperature"] == 0.2

    diff = erin.client.get(f"/api/v1/forks/{done['id']}/diff").json()
    assert [s["status"] for s in diff["steps"]] == ["unchanged"] * len(trace["spans"])
    assert diff["verdict"] == "unchanged" and diff["first_divergence"] is None


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_changed_input_replays_past_the_tool_steps_with_valid_tool_structure(
    provider: str, recorded: dict[str, Any], erin: ApiUser, llm: FakeLLMServer
) -> None:
    trace, sent = recorded[provider]
    start = len(llm.requests)
    done = _fork_and_replay(erin, trace, 0, modified_input="Is it warm in Oslo?")
    assert done["status"] == "completed", done
    replayed = [c["body"] for c in llm.requests[start:]]
    assert len(replayed) == 3, "every LLM step re-executed, no tool run"

    # Each later request answers the calls the provider has just made, by their new ids.
    for previous, body in itertools.pairwise(replayed):
        calls, results = _tool_ids(body)
        assert calls == results
        assert calls[-1].endswith(digest_of(previous)), "the newest call is the one the last answer made"
    for original, again in zip(sent, replayed, strict=True):
        assert canonical_request(again)["tools"] == canonical_request(original)["tools"]
    assert "Oslo" in json.dumps(replayed[-1]) and "Paris" not in json.dumps(replayed[0]["messages"])

    result = erin.client.get(f"/api/v1/traces/{done['result_trace_id']}").json()
    assert _kinds(result) == _kinds(trace)
    new_calls = [c for body in replayed[1:] for c in _tool_ids(body)[0][-1:]]
    tool_spans = [s for s in result["spans"] if s["span_type"] == "tool_call"]
    assert [s["metadata"]["tool_call_id"] for s in tool_spans] == new_calls
    assert all(s["input"] == {"city": "Oslo"} for s in tool_spans)
    assert all(s["metadata"]["replay"] == "replayed" for s in tool_spans)
    originals = {s["id"]: s for s in trace["spans"]}
    assert all(s["output"] == originals[s["metadata"]["original_span_id"]]["output"] for s in tool_spans)
    last_answer = [s for s in result["spans"] if s["span_type"] == "llm_call"][-1]["output"]
    assert result["output"] == last_answer == answer_for(replayed[-1])

    diff = erin.client.get(f"/api/v1/forks/{done['id']}/diff").json()
    assert diff["first_divergence"]["index"] == 0 and diff["verdict"] != "unchanged"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_long_conversations_are_rebuilt_from_earlier_steps(
    provider: str, fork_server: RunningServer, erin: ApiUser, llm: FakeLLMServer
) -> None:
    """The SDK keeps a call's newest 10 messages and 1,000 characters of each; the replay sends it whole."""
    trace, sent = record_agent(fork_server, erin, llm, provider, question="Plan a day in Rome", tools=5)
    assert len(sent) == 6
    assert any(s["input"].get("messages_omitted") for s in trace["spans"] if s["span_type"] == "llm_call")
    assert any(len(json.dumps(b)) > 1000 for b in sent[-1]["messages"])
    start = len(llm.requests)
    done = _fork_and_replay(erin, trace, 0)
    assert done["status"] == "completed", done
    replayed = [c["body"] for c in llm.requests[start:]]
    assert [canonical_request(b) for b in replayed] == [canonical_request(b) for b in sent]
    assert erin.client.get(f"/api/v1/forks/{done['id']}/diff").json()["verdict"] == "unchanged"


def test_a_new_answer_calling_other_tools_stops_the_replay_there(
    recorded: dict[str, Any], erin: ApiUser, llm: FakeLLMServer
) -> None:
    trace, sent = recorded["openai"]
    only_weather = [t for t in sent[0]["tools"] if t["function"]["name"] == "get_weather"]
    start = len(llm.requests)
    done = _fork_and_replay(erin, trace, 0, modified_input={"tools": only_weather})
    assert done["status"] == "failed"
    assert "calls get_weather where the recording called get_packing_list" in done["error"]
    assert "mode: agent" in done["error"]
    assert done["runs"][-1]["failed_step"]["index"] == 1
    assert done["runs"][-1]["failed_step"]["span_type"] == "tool_call"
    assert len(llm.requests) - start == 1


def test_a_full_recording_is_sent_as_recorded(erin: ApiUser, llm: FakeLLMServer) -> None:
    """A recorder that keeps the whole request (tools with descriptions, tool_choice, response_format,
    stop, the tool structure of every message) gets all of it sent back, changed only where the fork says."""
    import openai

    client = openai.OpenAI(base_url=f"{llm.url}/v1", api_key="sk-test", max_retries=0)
    options: dict[str, Any] = {
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Current weather in a city",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            }
        ],
        "tool_choice": "auto",
        "response_format": {"type": "text"},
        "stop": ["END"],
        "temperature": 0.4,
        "presence_penalty": 0.1,
    }
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Umbrella in Lisbon?"}]
    spans: list[dict[str, Any]] = []
    while True:
        step_id = f"llm-{uuid.uuid4().hex[:8]}"
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=messages, **options)  # type: ignore[arg-type]
        message = reply.choices[0].message.model_dump(exclude_none=True)
        spans.append(
            {
                "id": step_id, "span_type": "llm_call", "name": "chat", "model": "gpt-4o-mini",
                "input": {"messages": list(messages), **options}, "output": message,
            }
        )  # fmt: skip
        if not message.get("tool_calls"):
            break
        messages.append(message)
        for call in message["tool_calls"]:
            result = json.dumps({"rain_mm": 3})
            spans.append(
                {
                    "id": f"tool-{uuid.uuid4().hex[:8]}", "span_type": "tool_call", "name": "get_weather",
                    "parent_id": step_id, "input": json.loads(call["function"]["arguments"]),
                    "output": result, "metadata": {"tool_call_id": call["id"]},
                }
            )  # fmt: skip
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})
    r = erin.client.post("/api/v1/traces", json={"name": "full-recorder", "spans": spans})
    assert r.status_code == 201, r.text
    trace = erin.client.get(f"/api/v1/traces/{r.json()['id']}").json()
    assert len(trace["spans"]) == 3

    start = len(llm.requests)
    done = _fork_and_replay(erin, trace, 0, modified_input="Umbrella in Porto?")
    assert done["status"] == "completed", done
    first, second = (c["body"] for c in llm.requests[start:])
    for body in (first, second):
        assert {k: body[k] for k in options} == options
    assert first["messages"] == [{"role": "user", "content": "Umbrella in Porto?"}]
    calls, results = _tool_ids(second)
    assert calls == results == [f"call_{digest_of(first)}"]
    assert second["messages"][-1]["content"] == json.dumps({"rain_mm": 3})


def test_unknown_parameters_are_refused_and_nothing_is_stored(
    recorded: dict[str, Any], erin: ApiUser
) -> None:
    trace, _ = recorded["openai"]
    before = erin.client.get("/api/v1/forks").json()["total"]
    r = erin.client.post(
        "/api/v1/forks",
        json={
            "trace_id": trace["id"],
            "span_id": trace["spans"][0]["id"],
            "parameters": {"temperature": 0.3, "temprature": 0.9, "frobnicate": True},
        },
    )
    assert r.status_code == 400
    error = r.json()["error"]
    assert "parameters" in error and "'frobnicate'" in error and "'temprature'" in error
    assert "'temperature'" not in error.split(";")[0]
    assert erin.client.get("/api/v1/forks").json()["total"] == before

    fork = erin.client.post(
        "/api/v1/forks", json={"trace_id": trace["id"], "span_id": trace["spans"][0]["id"]}
    ).json()
    r = erin.client.post(f"/api/v1/forks/{fork['id']}/replay", json={"parameters": {"top_n": 3}})
    assert r.status_code == 400 and "'top_n'" in r.json()["error"]
    after = erin.client.get(f"/api/v1/forks/{fork['id']}").json()
    assert after["status"] == "created" and after["runs"] == []


def test_an_option_the_provider_lacks_fails_before_any_call(
    recorded: dict[str, Any], erin: ApiUser, llm: FakeLLMServer
) -> None:
    trace, _ = recorded["anthropic"]
    start = len(llm.requests)
    done = _fork_and_replay(erin, trace, 0, parameters={"seed": 3, "temperature": 0.1})
    assert done["status"] == "failed"
    assert "anthropic requests have no option seed" in done["error"]
    assert len(llm.requests) == start

    done = _fork_and_replay(erin, trace, 0, parameters={"stop": ["END"], "max_completion_tokens": 64})
    assert done["status"] == "completed", done
    first = llm.requests[start]["body"]
    assert first["stop_sequences"] == ["END"] and first["max_tokens"] == 64


def test_gemini_steps_fail_before_any_call(erin: ApiUser, llm: FakeLLMServer) -> None:
    """Spans as the SDK's Gemini interceptor records them: `contents` kept only as text."""
    spans = [
        {
            "id": f"g{i}-{uuid.uuid4().hex[:6]}",
            "span_type": "llm_call",
            "name": "retrace.ai.generate",
            "model": "gemini-2.5-flash",
            "input": "[Content(parts=[Part(text='Is it warm in Paris?')], role='user')]",
            "output": "It is.",
            "metadata": {"sampling": {"temperature": 0.2}},
        }
        for i in range(2)
    ]
    r = erin.client.post("/api/v1/traces", json={"name": "gemini-agent", "spans": spans})
    trace = erin.client.get(f"/api/v1/traces/{r.json()['id']}").json()
    start = len(llm.requests)
    done = _fork_and_replay(erin, trace, 0, modified_input="And in Oslo?")
    assert done["status"] == "failed"
    assert "Gemini calls are not replayed on the server" in done["error"]
    assert "mode: agent" in done["error"]
    assert done["runs"][-1]["failed_step"]["index"] == 0
    assert len(llm.requests) == start


def test_a_model_of_another_provider_gets_the_step_in_its_protocol(
    recorded: dict[str, Any], erin: ApiUser, llm: FakeLLMServer
) -> None:
    """An OpenAI step moved to a Claude model goes out as a Messages request, and the OpenAI steps
    after it carry its answer back as OpenAI tool calls."""
    trace, sent = recorded["openai"]
    start = len(llm.requests)
    done = _fork_and_replay(erin, trace, 0, model="claude-3-5-haiku-20241022")
    assert done["status"] == "completed", done
    calls = llm.requests[start:]
    assert [c["path"] for c in calls] == ["/v1/messages", "/v1/chat/completions", "/v1/chat/completions"]
    first, second = calls[0]["body"], calls[1]["body"]
    assert first["system"] == sent[0]["messages"][0]["content"]
    assert first["messages"] == [{"role": "user", "content": "Is it warm in Paris?"}]
    assert sorted(t["name"] for t in first["tools"]) == ["get_packing_list", "get_weather"]
    assert all("input_schema" in t for t in first["tools"])
    assert first["temperature"] == 0.2 and first["max_tokens"] == 300 and "seed" not in first
    assistant = second["messages"][2]
    assert assistant["role"] == "assistant"
    assert [c["id"] for c in assistant["tool_calls"]] == [f"toolu_{digest_of(first)}"]
    assert second["messages"][3]["tool_call_id"] == f"toolu_{digest_of(first)}"
    result = erin.client.get(f"/api/v1/traces/{done['result_trace_id']}").json()
    assert result["spans"][0]["model"] == "claude-3-5-haiku-20241022"
    assert result["spans"][0]["metadata"]["provider"] == "anthropic"
