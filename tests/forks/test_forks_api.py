"""Forks over real HTTP: creation, replay through the official SDKs against a fake provider, history."""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.llm_server import FAIL_MARKER, FakeLLMServer, answer_for
from tests.forks.agent import SYSTEM, WEATHER, run_travel_agent
from tests.support.server import ApiUser


def _fork(user: ApiUser, trace: dict[str, Any], step: int, **changes: Any) -> dict[str, Any]:
    r = user.client.post(
        "/api/v1/forks",
        json={"trace_id": trace["id"], "fork_point_span_id": trace["spans"][step]["id"], **changes},
    )
    assert r.status_code == 201, r.text
    return r.json()


def _replay(user: ApiUser, fork: dict[str, Any], body: dict[str, Any] | None = None) -> dict[str, Any]:
    r = (
        user.client.post(f"/api/v1/forks/{fork['id']}/replay", json=body)
        if body
        else user.client.post(f"/api/v1/forks/{fork['id']}/replay")
    )
    assert r.status_code == 200, r.text
    return r.json()


def _result(user: ApiUser, fork: dict[str, Any]) -> dict[str, Any]:
    r = user.client.get(f"/api/v1/traces/{fork['result_trace_id']}")
    assert r.status_code == 200, r.text
    return r.json()


def _requests_since(llm: FakeLLMServer, start: int) -> list[dict[str, Any]]:
    return [r["body"] for r in llm.requests[start:]]


def test_create_get_and_list(carol: ApiUser, llm: FakeLLMServer) -> None:
    trace = run_travel_agent(carol, llm)
    r = carol.client.post(
        "/api/v1/forks",
        json={
            "trace_id": trace["id"],
            "span_id": trace["spans"][2]["id"],
            "model": "gpt-4o",
            "parameters": {"temperature": 0.2},
            "name": "try gpt-4o",
        },
    )
    assert r.status_code == 201, r.text
    fork = r.json()
    assert fork["status"] == "created"
    assert fork["fork_point_span_id"] == trace["spans"][2]["id"]
    assert fork["result_trace_id"] is None
    assert fork["model"] == "gpt-4o" and fork["parameters"] == {"temperature": 0.2}
    assert fork["modified_input"] is None and fork["created_at"].endswith("Z")

    got = carol.client.get(f"/api/v1/forks/{fork['id']}").json()
    assert got["id"] == fork["id"] and got["runs"] == []
    other = _fork(carol, run_travel_agent(carol, llm), 0)
    listed = carol.client.get("/api/v1/forks", params={"trace_id": trace["id"]}).json()
    assert [f["id"] for f in listed["data"]] == [fork["id"]]
    assert listed["total"] == 1 and listed["limit"] == 20 and listed["offset"] == 0
    everything = carol.client.get("/api/v1/forks").json()
    assert {f["id"] for f in everything["data"]} == {fork["id"], other["id"]}


def test_create_rejects_wrong_shapes_and_unknown_spans(carol: ApiUser, llm: FakeLLMServer) -> None:
    trace = run_travel_agent(carol, llm)
    span_id = trace["spans"][0]["id"]
    bad = [
        ({"fork_point_span_id": span_id}, "trace_id"),
        ({"trace_id": trace["id"]}, "fork_point_span_id"),
        ({"trace_id": trace["id"], "span_id": span_id, "parameters": {"temperature": 7}}, "temperature"),
        ({"trace_id": trace["id"], "span_id": span_id, "parameters": "hot"}, ""),
        ({"trace_id": trace["id"], "span_id": span_id, "model": ""}, "model"),
    ]
    for body, field in bad:
        r = carol.client.post("/api/v1/forks", json=body)
        assert r.status_code == 400, (body, r.text)
        assert field in r.json()["error"]
    r = carol.client.post("/api/v1/forks", content=b"[1]", headers={"content-type": "application/json"})
    assert r.status_code == 400

    other = run_travel_agent(carol, llm)
    for body in (
        {"trace_id": trace["id"], "span_id": "no-such-span"},
        {"trace_id": trace["id"], "span_id": other["spans"][0]["id"]},
        {"trace_id": "no-such-trace", "span_id": span_id},
    ):
        r = carol.client.post("/api/v1/forks", json=body)
        assert r.status_code == 404, (body, r.text)
        assert "not found" in r.json()["error"]
    assert carol.client.get("/api/v1/forks/nope").status_code == 404
    assert carol.client.post("/api/v1/forks/nope/replay").status_code == 404


def test_modified_input_changes_every_later_step(carol: ApiUser, llm: FakeLLMServer) -> None:
    trace = run_travel_agent(carol, llm)
    original = trace["spans"]
    fork = _fork(carol, trace, 0, modified_input="What should I wear in Oslo today?")
    start = len(llm.requests)
    done = _replay(carol, fork)
    assert done["status"] == "completed", done
    result = _result(carol, done)
    assert result["status"] == "completed"
    assert result["metadata"]["fork_of"] == trace["id"]
    assert result["metadata"]["fork_id"] == fork["id"]
    assert result["metadata"]["fork_point_span_id"] == original[0]["id"]
    spans = result["spans"]
    assert [(s["span_type"], s["name"]) for s in spans] == [(s["span_type"], s["name"]) for s in original]

    plan, tool, answer, polish = spans
    sent = _requests_since(llm, start)
    assert len(sent) == 3, "three LLM calls re-executed, the tool never"
    assert sent[0]["messages"][-1] == {"role": "user", "content": "What should I wear in Oslo today?"}
    assert sent[0]["messages"][0] == {"role": "system", "content": SYSTEM}
    assert plan["output"] == answer_for(sent[0]) != original[0]["output"]
    assert plan["metadata"]["replay"] == "executed"

    assert tool["output"] == WEATHER and tool["metadata"]["replay"] == "replayed"
    assert tool["metadata"]["original_span_id"] == original[1]["id"]

    # The next call carries the new plan where the old one was.
    assistant_turns = [m["content"] for m in sent[1]["messages"] if m["role"] == "assistant"]
    assert assistant_turns == [plan["output"]]
    assert original[0]["output"] not in json.dumps(sent[1])
    assert answer["input"]["messages"] == sent[1]["messages"]
    assert answer["output"] != original[2]["output"]
    # The old answer was embedded in a longer prompt: the new one takes its place inside it.
    assert sent[2]["messages"][-1]["content"] == f"Polish this answer for the traveller: {answer['output']}"
    assert result["output"] == polish["output"] == answer_for(sent[2])

    for span in (plan, answer, polish):
        assert span["input_tokens"] > 0 and span["output_tokens"] > 0
        assert span["cost"] > 0, "gpt-4o-mini is in the price table"
        assert span["duration_ms"] is not None and span["error"] is None
    expected_cost = (plan["input_tokens"] * 0.15 + plan["output_tokens"] * 0.60) / 1_000_000
    assert abs(plan["cost"] - expected_cost) < 1e-12
    assert result["total_tokens"] == sum((s["input_tokens"] or 0) + (s["output_tokens"] or 0) for s in spans)


def test_model_and_parameters_apply_at_the_fork_point(carol: ApiUser, llm: FakeLLMServer) -> None:
    trace = run_travel_agent(carol, llm)
    original = trace["spans"]
    fork = _fork(
        carol, trace, 2, model="gpt-4o", parameters={"temperature": 0.3, "max_tokens": 64, "top_p": 0.9}
    )
    start = len(llm.requests)
    result = _result(carol, _replay(carol, fork))
    plan, tool, answer, polish = result["spans"]
    for copied, recorded in ((plan, original[0]), (tool, original[1])):
        assert copied["metadata"]["replay"] == "recorded"
        assert copied["output"] == recorded["output"] and copied["input"] == recorded["input"]
        assert copied["id"] != recorded["id"]
    sent = _requests_since(llm, start)
    assert len(sent) == 2
    assert sent[0]["model"] == "gpt-4o"
    assert (sent[0]["temperature"], sent[0]["max_tokens"], sent[0]["top_p"]) == (0.3, 64, 0.9)
    assert sent[0]["messages"] == original[2]["input"]["messages"]
    assert answer["model"] == "gpt-4o" and answer["metadata"]["parameters"]["temperature"] == 0.3
    assert sent[1]["model"] == "gpt-4o-mini" and "temperature" not in sent[1]
    assert polish["model"] == "gpt-4o-mini"
    assert abs(answer["cost"] - (answer["input_tokens"] * 2.5 + answer["output_tokens"] * 10) / 1e6) < 1e-12


def test_tool_fork_point_takes_the_new_output(carol: ApiUser, llm: FakeLLMServer) -> None:
    trace = run_travel_agent(carol, llm)
    snow = {"city": "Paris", "temp_c": -4, "sky": "snow"}
    fork = _fork(carol, trace, 1, modified_input=snow)
    start = len(llm.requests)
    result = _result(carol, _replay(carol, fork))
    plan, tool, answer, _polish = result["spans"]
    assert plan["metadata"]["replay"] == "recorded"
    assert tool["output"] == snow and tool["metadata"]["replay"] == "modified"
    sent = _requests_since(llm, start)
    assert len(sent) == 2
    weather = [m["content"] for m in sent[0]["messages"] if m["content"].startswith("Weather: ")]
    # PostgreSQL's JSONB does not keep key order, so compare the JSON, not its text.
    assert [json.loads(w.removeprefix("Weather: ")) for w in weather] == [snow]
    assert answer["output"] != trace["spans"][2]["output"]


def test_anthropic_spans_replay_through_the_messages_api(carol: ApiUser, llm: FakeLLMServer) -> None:
    trace = run_travel_agent(carol, llm, provider="anthropic", model="claude-3-5-haiku-20241022")
    fork = _fork(carol, trace, 0, modified_input="And in Lisbon?", parameters={"temperature": 0.5})
    start = len(llm.requests)
    result = _result(carol, _replay(carol, fork))
    assert result["status"] == "completed"
    calls = llm.requests[start:]
    assert [c["path"] for c in calls] == ["/v1/messages"] * 3
    first = calls[0]["body"]
    assert first["system"] == SYSTEM and first["max_tokens"] == 200 and first["temperature"] == 0.5
    assert first["messages"] == [{"role": "user", "content": "And in Lisbon?"}]
    plan = result["spans"][0]
    assert plan["output"] == answer_for(first)
    assert plan["metadata"]["provider"] == "anthropic"
    assert abs(plan["cost"] - (plan["input_tokens"] * 0.8 + plan["output_tokens"] * 4) / 1e6) < 1e-12
    assert plan["output"] in json.dumps(calls[1]["body"])


def test_provider_is_inferred_from_the_model_name(carol: ApiUser, llm: FakeLLMServer) -> None:
    trace = run_travel_agent(
        carol, llm, provider="anthropic", model="claude-sonnet-4-5", record_provider=False
    )
    start = len(llm.requests)
    result = _result(carol, _replay(carol, _fork(carol, trace, 2)))
    assert result["status"] == "completed"
    assert {c["path"] for c in llm.requests[start:]} == {"/v1/messages"}


def test_provider_error_mid_run_keeps_the_spans_done(carol: ApiUser, llm: FakeLLMServer) -> None:
    trace = run_travel_agent(carol, llm)
    fork = _fork(carol, trace, 1, modified_input={"error": f"service down {FAIL_MARKER}"})
    done = _replay(carol, fork)
    assert done["status"] == "failed"
    assert "step 2 (answer)" in done["error"] and FAIL_MARKER in done["error"]
    run = done["runs"][-1]
    assert run["status"] == "failed"
    assert run["failed_step"] == {
        "index": 2,
        "span_id": trace["spans"][2]["id"],
        "name": "answer",
        "span_type": "llm_call",
    }
    result = _result(carol, done)
    assert result["status"] == "failed"
    assert [s["name"] for s in result["spans"]] == ["plan", "get_weather", "answer"]
    assert "400" in result["spans"][2]["error"] and result["spans"][2]["output"] is None
    assert result["spans"][1]["metadata"]["replay"] == "modified"


def test_unknown_provider_fails_naming_the_setting(carol: ApiUser, llm: FakeLLMServer) -> None:
    trace = run_travel_agent(carol, llm)
    spans = [
        {**s, "id": f"x-{s['id']}", "trace_id": None, "metadata": {"provider": "cohere"}}
        for s in trace["spans"]
    ]
    copy = {"name": "cohere-run", "spans": spans}
    created = carol.client.post("/api/v1/traces", json=copy).json()
    start = len(llm.requests)
    done = _replay(carol, _fork(carol, carol.client.get(f"/api/v1/traces/{created['id']}").json(), 0))
    assert done["status"] == "failed"
    assert "unknown provider 'cohere'" in done["error"] and "RETRACE_OPENAI_BASE_URL" in done["error"]
    assert len(llm.requests) == start, "nothing is called when a provider cannot be used"


def test_replaying_again_keeps_the_history(carol: ApiUser, llm: FakeLLMServer) -> None:
    trace = run_travel_agent(carol, llm)
    fork = _fork(carol, trace, 0, modified_input="Rome?")
    first = _replay(carol, fork)
    second = _replay(carol, fork, {"modified_input": "Madrid?", "model": "gpt-4.1-mini"})
    assert second["status"] == "completed"
    assert second["result_trace_id"] != first["result_trace_id"]
    assert [r["result_trace_id"] for r in second["runs"]] == [
        first["result_trace_id"],
        second["result_trace_id"],
    ]
    assert [r["modified_input"] for r in second["runs"]] == ["Rome?", "Madrid?"]
    assert second["runs"][1]["model"] == "gpt-4.1-mini"
    assert second["execution_id"] == second["runs"][1]["execution_id"]
    assert second["modified_input"] == "Rome?", "the fork's own changes stay; the body overrode one replay"
    assert _result(carol, second)["spans"][0]["input"]["messages"][-1]["content"] == "Madrid?"
    assert _result(carol, first)["spans"][0]["input"]["messages"][-1]["content"] == "Rome?"


def test_claim_answers_for_the_current_execution_only(carol: ApiUser, llm: FakeLLMServer) -> None:
    fork = _fork(carol, run_travel_agent(carol, llm), 0)
    first = _replay(carol, fork)["execution_id"]
    url = f"/api/v1/forks/{fork['id']}/replay/claim"
    r = carol.client.post(url, json={"execution_id": first})
    assert r.status_code == 200, r.text
    assert r.json()["runs"][0]["claimed_at"] is not None
    second = _replay(carol, fork)["execution_id"]
    r = carol.client.post(url, json={"execution_id": first})
    assert r.status_code == 409 and "superseded" in r.json()["error"]
    assert carol.client.post(url, json={"execution_id": second}).status_code == 200
    assert carol.client.post(url, json={"execution_id": "made-up"}).status_code == 409
    assert carol.client.post(url, json={}).status_code == 400


def test_other_users_forks_are_not_found(carol: ApiUser, dave: ApiUser, llm: FakeLLMServer) -> None:
    trace = run_travel_agent(carol, llm)
    fork = _fork(carol, trace, 0)
    _replay(carol, fork)
    span_id = trace["spans"][0]["id"]
    assert (
        dave.client.post("/api/v1/forks", json={"trace_id": trace["id"], "span_id": span_id}).status_code
        == 404
    )
    assert dave.client.get(f"/api/v1/forks/{fork['id']}").status_code == 404
    assert dave.client.post(f"/api/v1/forks/{fork['id']}/replay").status_code == 404
    assert dave.client.get(f"/api/v1/forks/{fork['id']}/diff").status_code == 404
    claim = {"execution_id": carol.client.get(f"/api/v1/forks/{fork['id']}").json()["execution_id"]}
    assert dave.client.post(f"/api/v1/forks/{fork['id']}/replay/claim", json=claim).status_code == 404
    assert dave.client.get("/api/v1/forks", params={"trace_id": trace["id"]}).json()["total"] == 0
    assert carol.client.get(f"/api/v1/forks/{fork['id']}").json()["status"] == "completed"
