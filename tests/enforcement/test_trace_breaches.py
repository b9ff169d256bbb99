"""The answer of a trace names the guardrail policies the stored run broke."""

from __future__ import annotations

from tests.enforcement.test_ingest_review import _policy, _span, _store
from tests.support.server import ApiUser


def test_a_trace_answer_lists_the_policies_it_broke(alice: ApiUser, bob: ApiUser) -> None:
    budget = _policy(alice, name="budget <b>", kind="run_budget", max_tokens=100)
    deny = _policy(alice, name="no refunds", kind="tool_deny", tools=["refund"])
    _policy(bob, name="bob's budget", kind="run_budget", max_tokens=1)

    within = _store(alice, [_span("a", tokens=10)])
    assert alice.client.get(f"/api/v1/traces/{within}").json()["breaches"] == []

    over = _store(alice, [_span("a", tokens=80), _span("b", tokens=70)])
    breaches = alice.client.get(f"/api/v1/traces/{over}").json()["breaches"]
    assert len(breaches) == 1
    [breach] = breaches
    assert {k: breach[k] for k in ("policy_id", "policy_name", "kind", "action")} == {
        "policy_id": budget["id"],
        "policy_name": "budget <b>",
        "kind": "run_budget",
        "action": "block",
    }
    assert "150 tokens" in breach["reason"]
    # The breaches list of the enforcement API says the same.
    listed = alice.client.get("/api/v1/enforcement/breaches", params={"trace_id": over}).json()["data"]
    assert [(b["policy_id"], b["reason"]) for b in listed] == [(breach["policy_id"], breach["reason"])]

    both = _store(alice, [_span("a", tokens=150), _span("t", tool="refund", args={"order": 1})])
    kinds = {b["policy_id"]: b["kind"] for b in alice.client.get(f"/api/v1/traces/{both}").json()["breaches"]}
    assert kinds == {budget["id"]: "run_budget", deny["id"]: "tool_deny"}
    # The policy's later deletion keeps the record of what the run broke.
    assert alice.client.delete(f"/api/v1/enforcement/policies/{budget['id']}").status_code == 204
    assert len(alice.client.get(f"/api/v1/traces/{over}").json()["breaches"]) == 1
    # Other users' policies never mark this user's traces, nor show in their answers.
    assert bob.client.get(f"/api/v1/traces/{over}").status_code == 404
    mine = _store(bob, [_span("a", tokens=10)])
    assert [b["policy_name"] for b in bob.client.get(f"/api/v1/traces/{mine}").json()["breaches"]] == [
        "bob's budget"
    ]
