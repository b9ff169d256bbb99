from __future__ import annotations

import uuid

import pytest

from tests.support.semantic import found_ids, post_trace, search, span, wait_for, wait_semantic
from tests.support.server import ApiUser

DECLINED = (
    "My card got rejected at checkout",
    "Stripe returned card_declined: insufficient funds on the Visa",
)
WEATHER = ("What is the weather in Paris tomorrow?", "Sunny with a light breeze, 21 degrees")
DEPLOY = ("Roll out version 2.3 to the cluster", "kubectl apply finished; 3 pods restarted")


def test_exact_identifier_is_found_lexically_at_once(alice: ApiUser) -> None:
    code = f"ERR_{uuid.uuid4().hex[:8].upper()}"
    target = span("call the billing tool", "failed", error=f"BillingError {code}: quota exceeded")
    trace_id = post_trace(alice, [target, span(*WEATHER)])
    result = search(alice, code)
    assert result["mode"] == "lexical"
    assert found_ids(result) == [target["id"]]
    hit = result["data"][0]
    assert hit["trace_id"] == trace_id
    assert 0 < hit["score"] <= 1
    assert code in hit["highlight"]
    assert hit["span"]["error"].startswith("BillingError")


def test_semantic_match_with_no_word_in_common(carol: ApiUser) -> None:
    target, weather, deploy = span(*DECLINED), span(*WEATHER), span(*DEPLOY)
    post_trace(carol, [weather, target, deploy])
    query = "payment failed since the account had no money"
    assert search(carol, query, mode="lexical")["data"] == []
    semantic = wait_semantic(carol, query, target["id"])
    assert semantic["mode"] == "semantic"
    assert found_ids(semantic)[0] == target["id"]
    scores = [hit["score"] for hit in semantic["data"]]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    hybrid = search(carol, query)
    assert hybrid["mode"] == "hybrid"
    assert found_ids(hybrid)[0] == target["id"]


def test_hybrid_finds_identifiers_and_paraphrases(carol: ApiUser) -> None:
    tool = span(
        "look up order 77812", '{"status": "shipped"}', span_type="tool_call", name="fetch_order_status"
    )
    target = span(*DECLINED)
    post_trace(carol, [tool, target, span(*WEATHER)])
    wait_semantic(carol, "card payment refused", target["id"])
    assert found_ids(search(carol, "fetch_order_status"))[0] == tool["id"]
    assert found_ids(search(carol, "card payment refused"))[0] == target["id"]


def test_users_never_see_each_others_spans(carol: ApiUser, dave: ApiUser) -> None:
    secret = f"secret-{uuid.uuid4().hex[:8]}"
    target = span(f"my private note {secret}", "The customer's card was declined by the bank")
    post_trace(carol, [target])
    wait_semantic(carol, "payment refused", target["id"])
    assert search(dave, secret)["data"] == []
    assert target["id"] not in found_ids(search(dave, "payment refused", mode="semantic"))
    assert target["id"] not in found_ids(search(dave, "card declined bank"))


def test_filters(alice: ApiUser) -> None:
    word = f"zebra{uuid.uuid4().hex[:6]}"
    early = span(f"{word} early", "x", started_at="2026-01-01T00:00:00Z")
    late = span(f"{word} late", "x", started_at="2026-06-01T00:00:00Z", span_type="tool_call")
    first = post_trace(alice, [early])
    post_trace(alice, [late])
    assert sorted(found_ids(search(alice, word))) == sorted([early["id"], late["id"]])
    assert found_ids(search(alice, word, trace_id=first)) == [early["id"]]
    assert found_ids(search(alice, word, span_type="tool_call")) == [late["id"]]
    assert found_ids(search(alice, word, since="2026-03-01T00:00:00Z")) == [late["id"]]
    assert found_ids(search(alice, word, until="2026-03-01T00:00:00Z")) == [early["id"]]
    assert len(search(alice, word, limit=1)["data"]) == 1


def test_project_filter(alice: ApiUser, bob: ApiUser) -> None:
    word = f"okapi{uuid.uuid4().hex[:6]}"
    shop, blog, none = span(f"{word} shop", "x"), span(f"{word} blog", "x"), span(f"{word} none", "x")
    post_trace(alice, [shop], project_id="shop")
    post_trace(alice, [blog], project_id="blog")
    post_trace(alice, [none])
    post_trace(bob, [span(f"{word} bob", "x")], project_id="shop")
    assert len(search(alice, word)["data"]) == 3
    assert found_ids(search(alice, word, project_id="shop")) == [shop["id"]]
    assert found_ids(search(alice, word, project_id="blog", mode="lexical")) == [blog["id"]]
    assert search(alice, word, project_id="elsewhere")["data"] == []


def test_semantic_project_filter(carol: ApiUser) -> None:
    one, two = span(*DECLINED), span(*DECLINED)
    post_trace(carol, [one], project_id="checkout")
    other = post_trace(carol, [two], project_id="support")
    wait_semantic(carol, "payment refused", one["id"])
    wait_semantic(carol, "payment refused", two["id"], trace_id=other)
    found = search(carol, "payment refused", mode="semantic", project_id="checkout")
    assert found_ids(found) == [one["id"]]
    assert found_ids(search(carol, "payment refused", project_id="support"))[0] == two["id"]


def test_semantic_filters(carol: ApiUser) -> None:
    one, two = span(*DECLINED), span(*DECLINED, span_type="tool_call", started_at="2026-12-01T00:00:00Z")
    first = post_trace(carol, [one])
    post_trace(carol, [two])
    wait_semantic(carol, "payment refused", two["id"])
    wait_semantic(carol, "payment refused", one["id"])
    assert found_ids(search(carol, "payment refused", mode="semantic", trace_id=first)) == [one["id"]]
    assert found_ids(search(carol, "payment refused", mode="semantic", span_type="tool_call")) == [two["id"]]
    later = search(carol, "payment refused", mode="semantic", since="2026-11-30T00:00:00Z")
    assert found_ids(later) == [two["id"]]


def test_updated_span_is_searched_by_its_new_text(carol: ApiUser) -> None:
    old_word, new_word = f"alpha{uuid.uuid4().hex[:6]}", f"omega{uuid.uuid4().hex[:6]}"
    target = span(f"note {old_word}", "What is the weather in Paris tomorrow?")
    trace_id = post_trace(carol, [target])
    wait_semantic(carol, "forecast for the French capital", target["id"])
    changed = {**target, "input": f"note {new_word}", "output": DECLINED[1]}
    assert carol.client.patch(f"/api/v1/traces/{trace_id}", json={"spans": [changed]}).status_code == 200
    assert found_ids(search(carol, new_word, mode="lexical")) == [target["id"]]
    assert search(carol, old_word, mode="lexical")["data"] == []

    def reindexed() -> bool:
        hits = search(carol, "payment refused for lack of funds", mode="semantic", trace_id=trace_id)["data"]
        return bool(hits) and hits[0]["score"] > 0.3

    wait_for(reindexed)


def test_deleted_trace_leaves_search(carol: ApiUser) -> None:
    word = f"quux{uuid.uuid4().hex[:6]}"
    target = span(f"{word} card declined", DECLINED[1])
    trace_id = post_trace(carol, [target])
    wait_semantic(carol, "payment refused", target["id"], trace_id=trace_id)
    assert carol.client.delete(f"/api/v1/traces/{trace_id}").status_code == 204
    assert search(carol, word)["data"] == []
    assert search(carol, "payment refused", mode="semantic", trace_id=trace_id)["data"] == []


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "query"),
        ({"query": ""}, "query"),
        ({"query": "   "}, "blank"),
        ({"query": "x" * 2001}, "query"),
        ({"query": "x", "limit": 0}, "limit"),
        ({"query": "x", "limit": 101}, "limit"),
        ({"query": "x", "span_type": "nonsense"}, "span_type"),
        ({"query": "x", "project_id": ""}, "project_id"),
        ({"query": "x", "project_id": "p" * 257}, "project_id"),
        ({"query": "x", "since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "since"),
        ({"query": "x", "mode": "fuzzy"}, "mode"),
        ({"query": "x", "unknown": 1}, "unknown"),
    ],
)
def test_invalid_bodies(alice: ApiUser, body: dict[str, object], fragment: str) -> None:
    response = alice.client.post("/api/v1/search", json=body)
    assert response.status_code == 400
    assert fragment in response.json()["error"]


def test_bad_json_and_auth(alice: ApiUser) -> None:
    response = alice.client.post(
        "/api/v1/search", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert "JSON" in response.json()["error"]
    anonymous = alice.client.post("/api/v1/search", json={"query": "x"}, headers={"x-retrace-key": ""})
    assert anonymous.status_code == 401
    assert "error" in anonymous.json()


def test_semantic_mode_without_embedder_is_refused(alice: ApiUser) -> None:
    response = alice.client.post("/api/v1/search", json={"query": "anything", "mode": "semantic"})
    assert response.status_code == 400
    assert "RETRACE_EMBEDDER" in response.json()["error"]


def test_hybrid_without_embedder_says_lexical(alice: ApiUser) -> None:
    assert search(alice, "anything at all")["mode"] == "lexical"
