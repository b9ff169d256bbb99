"""The diff endpoint on known cases, and the alignment and pricing underneath it."""

from __future__ import annotations

import itertools
import random
from typing import Any

from retrace_server.forks.diff import align, verdict
from retrace_server.pricing import PriceTable
from tests.fakes.llm_server import FakeLLMServer
from tests.forks.agent import run_travel_agent
from tests.support.server import ApiUser


def _replayed(
    user: ApiUser, llm: FakeLLMServer, step: int, **changes: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    trace = run_travel_agent(user, llm)
    fork = user.client.post(
        "/api/v1/forks", json={"trace_id": trace["id"], "span_id": trace["spans"][step]["id"], **changes}
    ).json()
    r = user.client.post(f"/api/v1/forks/{fork['id']}/replay")
    assert r.status_code == 200 and r.json()["status"] == "completed", r.text
    return trace, r.json()


def test_identical_replay_is_unchanged(carol: ApiUser, llm: FakeLLMServer) -> None:
    trace, fork = _replayed(carol, llm, 0)
    r = carol.client.get(f"/api/v1/forks/{fork['id']}/diff")
    assert r.status_code == 200, r.text
    diff = r.json()
    assert diff["fork_id"] == fork["id"]
    assert diff["original_trace_id"] == trace["id"] and diff["fork_trace_id"] == fork["result_trace_id"]
    assert [s["status"] for s in diff["steps"]] == ["unchanged"] * 4
    assert all(s["output_diff"] is None for s in diff["steps"])
    assert diff["first_divergence"] is None
    assert diff["summary"]["tokens_delta"] == 0
    assert diff["summary"]["span_count_delta"] == 0 and diff["summary"]["error_delta"] == 0
    assert diff["verdict"] == "unchanged"
    assert [s["original"]["id"] for s in diff["steps"]] == [s["id"] for s in trace["spans"]]


def test_changed_input_diverges_at_the_fork_point(carol: ApiUser, llm: FakeLLMServer) -> None:
    trace, fork = _replayed(carol, llm, 2, modified_input="Be brief.")
    diff = carol.client.get(f"/api/v1/forks/{fork['id']}/diff").json()
    assert [s["status"] for s in diff["steps"]] == ["unchanged", "unchanged", "changed", "changed"]
    first = diff["first_divergence"]
    assert first["index"] == 2 and first["original_span_id"] == trace["spans"][2]["id"]
    step = diff["steps"][2]
    assert first["fork_span_id"] == step["fork"]["id"] and step["fork"]["replay"] == "executed"
    lines = step["output_diff"].splitlines()
    assert lines[:2] == ["--- original", "+++ fork"]
    assert f"-{trace['spans'][2]['output']}" in lines and f"+{step['fork']['output']}" in lines
    assert diff["summary"]["tokens_delta"] < 0, "a shorter question costs fewer tokens"
    assert diff["verdict"] == "improved"


def test_inserted_step_is_added(carol: ApiUser, llm: FakeLLMServer) -> None:
    _, fork = _replayed(carol, llm, 0)
    result = carol.client.get(f"/api/v1/traces/{fork['result_trace_id']}").json()
    answer = result["spans"][2]
    # The replayed agent called one more tool between the weather and the answer.
    extra = {
        "id": "extra-tool",
        "span_type": "tool_call",
        "name": "get_forecast",
        "input": {"city": "Paris"},
        "output": {"rain": "none"},
        "started_at": answer["started_at"],
        "ended_at": answer["started_at"],
        "error": "timeout after 5 s",
    }
    shifted = {**answer, "trace_id": None, "started_at": answer["ended_at"]}
    r = carol.client.patch(f"/api/v1/traces/{result['id']}", json={"spans": [extra, shifted]})
    assert r.status_code == 200, r.text
    diff = carol.client.get(f"/api/v1/forks/{fork['id']}/diff").json()
    statuses = [(s["status"], (s["original"] or s["fork"])["name"]) for s in diff["steps"]]
    assert statuses == [
        ("unchanged", "plan"),
        ("unchanged", "get_weather"),
        ("added", "get_forecast"),
        ("unchanged", "answer"),
        ("unchanged", "polish"),
    ]
    added = diff["steps"][2]
    assert added["original"] is None and added["fork"]["id"] == "extra-tool"
    assert diff["first_divergence"] == {"index": 2, "original_span_id": None, "fork_span_id": "extra-tool"}
    assert diff["summary"]["span_count_delta"] == 1 and diff["summary"]["error_delta"] == 1
    assert diff["verdict"] == "regressed"


def test_diff_before_any_replay_is_a_conflict(carol: ApiUser, llm: FakeLLMServer) -> None:
    trace = run_travel_agent(carol, llm)
    fork = carol.client.post(
        "/api/v1/forks", json={"trace_id": trace["id"], "span_id": trace["spans"][0]["id"]}
    )
    r = carol.client.get(f"/api/v1/forks/{fork.json()['id']}/diff")
    assert r.status_code == 409 and "not been replayed" in r.json()["error"]
    assert carol.client.get("/api/v1/forks/nope/diff").status_code == 404


def _lcs_length(a: list[int], b: list[int]) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, j in itertools.product(range(len(a)), range(len(b))):
        table[i + 1][j + 1] = table[i][j] + 1 if a[i] == b[j] else max(table[i][j + 1], table[i + 1][j])
    return table[-1][-1]


def test_alignment_is_a_longest_common_subsequence() -> None:
    rng = random.Random(7)
    for _ in range(500):
        a = [rng.randint(0, 3) for _ in range(rng.randint(0, 15))]
        b = [rng.randint(0, 3) for _ in range(rng.randint(0, 15))]
        pairs = align(a, b)
        assert [i for i, _ in pairs if i is not None] == list(range(len(a)))
        assert [j for _, j in pairs if j is not None] == list(range(len(b)))
        matched = [(i, j) for i, j in pairs if i is not None and j is not None]
        assert all(a[i] == b[j] for i, j in matched)
        assert len(matched) == _lcs_length(a, b)


def test_verdict_rule() -> None:
    assert verdict(error_delta=0, spend=0, any_step_differs=False) == "unchanged"
    assert verdict(error_delta=0, spend=0, any_step_differs=True) == "mixed"
    assert verdict(error_delta=-1, spend=0, any_step_differs=True) == "improved"
    assert verdict(error_delta=0, spend=-1, any_step_differs=True) == "improved"
    assert verdict(error_delta=1, spend=-1, any_step_differs=True) == "mixed"
    assert verdict(error_delta=0, spend=1, any_step_differs=True) == "regressed"


def test_price_table() -> None:
    prices = PriceTable()
    assert prices.cost("gpt-4o-2024-08-06", input_tokens=1_000_000, output_tokens=0) == 2.5
    assert prices.cost("claude-3-5-haiku-20241022", input_tokens=0, output_tokens=1_000_000) == 4.0
    cached = prices.cost("gpt-4o-mini", input_tokens=1_000_000, output_tokens=0, cached_input_tokens=500_000)
    assert cached == 0.1125
    assert prices.cost("my-local-llama", input_tokens=10, output_tokens=10) is None
    custom = PriceTable('{"my-local-llama": {"input": 1, "output": 2}, "gpt-4o": {"input": 1, "output": 1}}')
    assert custom.cost("my-local-llama", input_tokens=1_000_000, output_tokens=1_000_000) == 3.0
    assert custom.cost("gpt-4o", input_tokens=1_000_000, output_tokens=0) == 1.0
