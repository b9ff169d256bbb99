from __future__ import annotations

from typing import Any

import pytest

from tests.support.server import ApiUser


def remember(user: ApiUser, content: str, expect: int = 201, **fields: Any) -> dict[str, Any]:
    response = user.client.post("/api/v1/memory", json={"content": content, **fields})
    assert response.status_code == expect, response.text
    body: dict[str, Any] = response.json()
    return body


def recall(user: ApiUser, query: str, **fields: Any) -> list[dict[str, Any]]:
    response = user.client.post("/api/v1/memory/search", json={"query": query, **fields})
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def test_store_get_list_delete(erin: ApiUser) -> None:
    made = erin.client.post("/api/v1/traces", json={"id": "trace-1", "spans": [{"id": "span-7"}]})
    assert made.status_code == 201, made.text
    stored = remember(
        erin,
        "The user's name is Ada and she lives in Lyon",
        scope="project:travel",
        category="fact",
        key="user-name",
        metadata={"origin": "chat"},
        confidence=0.9,
        source_trace_id="trace-1",
        source_span_id="span-7",
    )
    assert (
        stored["scope"] == "project:travel" and stored["category"] == "fact" and stored["key"] == "user-name"
    )
    assert stored["metadata"] == {"origin": "chat"} and stored["confidence"] == 0.9
    assert stored["source_trace_id"] == "trace-1" and stored["source_span_id"] == "span-7"
    assert stored["created_at"].endswith("Z")
    assert erin.client.get(f"/api/v1/memory/{stored['id']}").json() == stored
    listed = erin.client.get("/api/v1/memory").json()
    assert listed["total"] == 1 and listed["data"] == [stored] and listed["limit"] == 20
    assert erin.client.delete(f"/api/v1/memory/{stored['id']}").status_code == 204
    missing = erin.client.get(f"/api/v1/memory/{stored['id']}")
    assert missing.status_code == 404 and missing.json() == {"error": "Memory not found"}
    assert erin.client.delete(f"/api/v1/memory/{stored['id']}").status_code == 404


def test_defaults(erin: ApiUser) -> None:
    stored = remember(erin, "Answers should be short")
    assert stored["scope"] == "global"
    assert stored["category"] is None and stored["key"] is None and stored["metadata"] == {}


def test_list_filters_and_pages(erin: ApiUser) -> None:
    remember(erin, "Prefers aisle seats", scope="session:a", category="preference")
    remember(erin, "Allergic to peanuts", scope="session:a", category="fact", key="allergy")
    remember(erin, "Use metric units", scope="session:b", category="preference")
    by_scope = erin.client.get("/api/v1/memory", params={"scope": "session:a"}).json()
    assert by_scope["total"] == 2
    by_category = erin.client.get("/api/v1/memory", params={"category": "preference"}).json()
    assert sorted(m["content"] for m in by_category["data"]) == ["Prefers aisle seats", "Use metric units"]
    by_key = erin.client.get("/api/v1/memory", params={"key": "allergy"}).json()
    assert [m["content"] for m in by_key["data"]] == ["Allergic to peanuts"]
    page = erin.client.get("/api/v1/memory", params={"limit": 1, "offset": 1}).json()
    assert page["total"] == 3 and len(page["data"]) == 1 and page["offset"] == 1
    assert erin.client.get("/api/v1/memory", params={"limit": 0}).status_code == 400


def test_same_content_in_a_scope_is_stored_once(erin: ApiUser) -> None:
    first = remember(erin, "The deploy window is Friday 14:00 UTC", scope="project:x")
    again = remember(erin, "  the deploy window is  friday 14:00 utc ", expect=200, scope="project:x")
    assert again["id"] == first["id"] and again["content"] == first["content"]
    elsewhere = remember(erin, "The deploy window is Friday 14:00 UTC", scope="project:y")
    assert elsewhere["id"] != first["id"]
    assert erin.client.get("/api/v1/memory").json()["total"] == 2


def test_same_key_updates_the_entry(erin: ApiUser) -> None:
    first = remember(erin, "Preferred language: French", key="language", category="preference")
    updated = remember(erin, "Preferred language: German", expect=200, key="language", category="preference")
    assert updated["id"] == first["id"]
    assert updated["content"] == "Preferred language: German"
    assert updated["updated_at"] >= first["updated_at"]
    assert erin.client.get("/api/v1/memory", params={"key": "language"}).json()["total"] == 1
    hits = recall(erin, "which tongue does the user want to speak", limit=1)
    assert hits[0]["id"] == first["id"] and "German" in hits[0]["content"]
    other_scope = remember(erin, "Preferred language: Spanish", key="language", scope="session:z")
    assert other_scope["id"] != first["id"]


def test_key_update_keeps_what_it_does_not_name(erin: ApiUser) -> None:
    erin.client.post("/api/v1/traces", json={"id": "seat-run", "spans": [{"id": "seat-step"}]})
    first = remember(
        erin,
        "Seat preference: window",
        key="seat",
        category="preference",
        metadata={"origin": "chat", "turn": 3},
        confidence=0.8,
        source_trace_id="seat-run",
        source_span_id="seat-step",
    )
    updated = remember(erin, "Seat preference: aisle", expect=200, key="seat")
    assert updated["id"] == first["id"] and updated["content"] == "Seat preference: aisle"
    for kept in ("category", "metadata", "confidence", "source_trace_id", "source_span_id"):
        assert updated[kept] == first[kept], kept
    assert [h["id"] for h in recall(erin, "where to sit", category="preference")] == [first["id"]]
    named = remember(
        erin, "Seat preference: aisle, front", expect=200, key="seat", confidence=0.5, metadata={}
    )
    assert named["confidence"] == 0.5 and named["metadata"] == {}
    assert named["category"] == "preference" and named["source_trace_id"] == "seat-run"
    cleared = remember(erin, "Seat preference: any", expect=200, key="seat", confidence=None)
    assert cleared["confidence"] is None and cleared["category"] == "preference"


def test_source_trace_must_be_the_callers(erin: ApiUser, frank: ApiUser) -> None:
    made = frank.client.post("/api/v1/traces", json={"id": "frank-run", "spans": [{"id": "frank-step"}]})
    assert made.status_code == 201, made.text
    erin.client.post("/api/v1/traces", json={"id": "erin-run", "spans": [{"id": "erin-step"}]})
    others = erin.client.post(
        "/api/v1/memory", json={"content": "cites Frank", "source_trace_id": "frank-run"}
    )
    missing = erin.client.post(
        "/api/v1/memory", json={"content": "cites nothing", "source_trace_id": "no-run"}
    )
    for refused, trace_id in ((others, "frank-run"), (missing, "no-run")):
        assert refused.status_code == 400, refused.text
        assert refused.json() == {"error": f"source_trace_id: you have no trace {trace_id!r}"}
    wrong_span = erin.client.post(
        "/api/v1/memory",
        json={"content": "cites Frank's span", "source_trace_id": "erin-run", "source_span_id": "frank-step"},
    )
    assert wrong_span.status_code == 400 and "source_span_id" in wrong_span.json()["error"]
    assert erin.client.get("/api/v1/memory").json()["total"] == 0
    keyed = remember(
        erin, "Cites my own run", key="cite", source_trace_id="erin-run", source_span_id="erin-step"
    )
    moved = erin.client.post(
        "/api/v1/memory", json={"content": "Cites my own run", "key": "cite", "source_trace_id": "frank-run"}
    )
    assert moved.status_code == 400
    assert erin.client.get(f"/api/v1/memory/{keyed['id']}").json()["source_trace_id"] == "erin-run"


def test_key_update_onto_another_entrys_content_conflicts(erin: ApiUser) -> None:
    remember(erin, "Timezone is CET")
    remember(erin, "Timezone is PST", key="tz")
    response = erin.client.post("/api/v1/memory", json={"content": "Timezone is CET", "key": "tz"})
    assert response.status_code == 409
    assert "already stored" in response.json()["error"]


def test_search_right_after_write_finds_it(erin: ApiUser) -> None:
    stored = remember(erin, "Always run the database migrations before deploying", category="instruction")
    hits = recall(erin, "apply schema changes before a release")
    assert hits[0]["id"] == stored["id"]
    assert 0 < hits[0]["score"] <= 1


def test_semantic_ranking_scores_and_filters(erin: ApiUser) -> None:
    pet = remember(erin, "The user owns a golden retriever named Max", scope="project:home", category="fact")
    food = remember(
        erin, "The user is vegetarian and avoids fish", scope="project:home", category="preference"
    )
    remember(erin, "Quarterly reports are due on the fifth", scope="project:work", category="fact")
    hits = recall(erin, "what kind of dog do they have")
    assert hits[0]["id"] == pet["id"]
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert [h["id"] for h in recall(erin, "meals", category="preference")] == [food["id"]]
    assert {h["id"] for h in recall(erin, "anything", scope="project:home")} == {pet["id"], food["id"]}
    strict = recall(erin, "what kind of dog do they have", min_score=hits[0]["score"])
    assert [h["id"] for h in strict] == [pet["id"]]
    assert len(recall(erin, "dog", limit=1)) == 1


def test_users_are_isolated(erin: ApiUser, frank: ApiUser) -> None:
    stored = remember(erin, "Erin's locker code is 4471")
    assert frank.client.get(f"/api/v1/memory/{stored['id']}").status_code == 404
    assert frank.client.delete(f"/api/v1/memory/{stored['id']}").status_code == 404
    assert frank.client.get("/api/v1/memory").json()["total"] == 0
    assert recall(frank, "locker code") == []
    assert remember(frank, "Erin's locker code is 4471")["id"] != stored["id"]
    assert erin.client.get(f"/api/v1/memory/{stored['id']}").status_code == 200


@pytest.mark.parametrize(
    ("path", "body", "fragment"),
    [
        ("/api/v1/memory", {}, "content"),
        ("/api/v1/memory", {"content": "  "}, "blank"),
        ("/api/v1/memory", {"content": "x", "confidence": 1.5}, "confidence"),
        ("/api/v1/memory", {"content": "x", "scope": ""}, "scope"),
        ("/api/v1/memory", {"content": "x", "metadata": [1]}, "metadata"),
        ("/api/v1/memory/search", {}, "query"),
        ("/api/v1/memory/search", {"query": "x", "limit": 0}, "limit"),
        ("/api/v1/memory/search", {"query": "x", "min_score": 2}, "min_score"),
    ],
)
def test_invalid_bodies(erin: ApiUser, path: str, body: dict[str, Any], fragment: str) -> None:
    response = erin.client.post(path, json=body)
    assert response.status_code == 400
    assert fragment in response.json()["error"]


def test_requires_authentication(erin: ApiUser) -> None:
    for method, path in [
        ("GET", "/api/v1/memory"),
        ("POST", "/api/v1/memory/search"),
        ("GET", "/api/v1/memory/x"),
    ]:
        response = erin.client.request(method, path, headers={"x-retrace-key": ""}, json={"query": "x"})
        assert response.status_code == 401
        assert "error" in response.json()


def test_without_embedder_search_matches_words(alice: ApiUser) -> None:
    stored = remember(alice, "Deploys happen on Fridays after lunch")
    remember(alice, "The office plant needs water")
    response = alice.client.post("/api/v1/memory/search", json={"query": "when do deploys happen"})
    assert response.status_code == 200
    body = response.json()
    assert body["mode"] == "lexical"
    assert body["data"][0]["id"] == stored["id"] and body["data"][0]["score"] == 1.0
