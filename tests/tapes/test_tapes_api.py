from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.support.server import ApiUser, RunningServer

OPENAI_KEY = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0" * 2


def _trace(**over: Any) -> dict[str, Any]:
    trace_id = str(uuid.uuid4())
    return {
        "id": trace_id,
        "name": "checkout-agent",
        "started_at": "2026-11-28T10:00:00Z",
        "input": {"question": "refund order 42"},
        "spans": [
            {
                "id": f"s1-{trace_id[:8]}",
                "name": "plan",
                "input": {"messages": [{"role": "user", "content": "refund order 42"}]},
                "output": "call the refund tool",
                "input_tokens": 10,
                "output_tokens": 4,
                "started_at": "2026-11-28T10:00:01Z",
            },
            {
                "id": f"s2-{trace_id[:8]}",
                "span_type": "tool_call",
                "name": "refund",
                "input": {"order": 42},
                "output": {"ok": True},
                "started_at": "2026-11-28T10:00:02Z",
            },
        ],
        **over,
    }


def _publish(user: ApiUser, trace: dict[str, Any], **options: Any) -> dict[str, Any]:
    r = user.client.post("/api/v1/traces", json=trace)
    assert r.status_code == 201, r.text
    r = user.client.post("/api/v1/tapes", json={"trace_id": trace["id"], **options})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def _anonymous(server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=60)


def test_publish_returns_slug_and_url(alice: ApiUser, server: RunningServer) -> None:
    tape = _publish(alice, _trace(), description="How the agent refunds")
    assert len(tape["slug"]) >= 10
    assert all(c.isalnum() or c in "-_" for c in tape["slug"])
    assert tape["url"] == f"http://retrace.test/api/v1/tapes/{tape['slug']}"
    assert tape["title"] == "checkout-agent"
    assert tape["description"] == "How the agent refunds"
    assert tape["visibility"] == "public"
    assert tape["span_count"] == 2
    assert tape["redacted_count"] == 0
    assert tape["created_at"].endswith("Z")
    assert "spans" not in tape


def test_slugs_are_distinct(alice: ApiUser) -> None:
    trace = _trace()
    first = _publish(alice, trace)
    second = alice.client.post("/api/v1/tapes", json={"trace_id": trace["id"], "title": "again"}).json()
    assert first["slug"] != second["slug"]
    assert second["title"] == "again"


def test_public_read_without_credentials_counts_views(alice: ApiUser, server: RunningServer) -> None:
    trace = _trace()
    tape = _publish(alice, trace)
    with _anonymous(server) as anonymous:
        first = anonymous.get(f"/api/v1/tapes/{tape['slug']}")
        second = anonymous.get(f"/api/v1/tapes/{tape['slug']}")
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["trace"]["id"] == trace["id"]
    assert body["trace"]["input"] == {"question": "refund order 42"}
    assert [s["name"] for s in body["spans"]] == ["plan", "refund"]
    assert body["spans"][1]["output"] == {"ok": True}
    assert body["spans"][0]["started_at"] == "2026-11-28T10:00:01.000000Z"
    assert first.json()["view_count"] == 1
    assert second.json()["view_count"] == 2


def test_unknown_slug_is_404(server: RunningServer) -> None:
    with _anonymous(server) as anonymous:
        r = anonymous.get("/api/v1/tapes/doesnotexist123")
    assert r.status_code == 404
    assert r.json() == {"error": "Tape not found"}


def test_bad_credentials_on_a_public_read_are_refused(alice: ApiUser, server: RunningServer) -> None:
    tape = _publish(alice, _trace())
    with _anonymous(server) as anonymous:
        r = anonymous.get(f"/api/v1/tapes/{tape['slug']}", headers={"x-retrace-key": "rt_live_wrong"})
    assert r.status_code == 401
    assert r.json() == {"error": "Invalid API key"}
    assert alice.client.get(f"/api/v1/tapes/{tape['slug']}").json()["view_count"] == 1


def test_snapshot_survives_trace_edits_and_deletion(alice: ApiUser, server: RunningServer) -> None:
    trace = _trace()
    tape = _publish(alice, trace)
    extra_span = {"id": "late", "name": "late", "started_at": "2026-11-28T10:00:09Z"}
    edited = {
        "status": "failed",
        "output": "changed",
        "spans": [{**trace["spans"][0], "output": "rewritten"}, extra_span],
    }
    assert alice.client.patch(f"/api/v1/traces/{trace['id']}", json=edited).status_code == 200
    with _anonymous(server) as anonymous:
        after_edit = anonymous.get(f"/api/v1/tapes/{tape['slug']}").json()
        assert after_edit["trace"]["status"] == "running"
        assert after_edit["trace"]["output"] is None
        assert [s["output"] for s in after_edit["spans"]] == ["call the refund tool", {"ok": True}]

        assert alice.client.delete(f"/api/v1/traces/{trace['id']}").status_code == 204
        after_delete = anonymous.get(f"/api/v1/tapes/{tape['slug']}")
    assert after_delete.status_code == 200
    assert after_delete.json()["spans"] == after_edit["spans"]
    assert after_delete.json()["trace"] == after_edit["trace"]


def test_only_the_owner_can_delete(alice: ApiUser, bob: ApiUser, server: RunningServer) -> None:
    tape = _publish(alice, _trace())
    slug = tape["slug"]
    assert bob.client.delete(f"/api/v1/tapes/{slug}").status_code == 404
    with _anonymous(server) as anonymous:
        assert anonymous.delete(f"/api/v1/tapes/{slug}").status_code == 401
        assert anonymous.get(f"/api/v1/tapes/{slug}").status_code == 200
        assert alice.client.delete(f"/api/v1/tapes/{slug}").status_code == 204
        assert anonymous.get(f"/api/v1/tapes/{slug}").status_code == 404
    assert alice.client.delete(f"/api/v1/tapes/{slug}").status_code == 404


def test_cannot_publish_another_users_trace(alice: ApiUser, bob: ApiUser) -> None:
    trace = _trace()
    alice.client.post("/api/v1/traces", json=trace)
    r = bob.client.post("/api/v1/tapes", json={"trace_id": trace["id"]})
    assert r.status_code == 404
    assert r.json() == {"error": "Trace not found"}


def test_publish_needs_credentials(server: RunningServer) -> None:
    with _anonymous(server) as anonymous:
        r = anonymous.post("/api/v1/tapes", json={"trace_id": "x"})
    assert r.status_code == 401
    assert "error" in r.json()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "trace_id"),
        ({"trace_id": "t", "visibility": "private"}, "visibility"),
        ({"trace_id": "t", "redcat": False}, "redcat"),
        ({"trace_id": "t", "redact_patterns": ["("]}, "redact_patterns[0]: invalid regular expression"),
        (
            {"trace_id": "t", "redact_patterns": ["ok", "a*"]},
            "redact_patterns[1]: the pattern matches the empty",
        ),
        ({"trace_id": "t", "redact": False, "redact_patterns": ["x"]}, "redact: false"),
    ],
)
def test_bad_bodies_are_400(alice: ApiUser, body: dict[str, Any], message: str) -> None:
    trace = _trace()
    alice.client.post("/api/v1/traces", json=trace)
    if body.get("trace_id") == "t":
        body = {**body, "trace_id": trace["id"]}
    r = alice.client.post("/api/v1/tapes", json=body)
    assert r.status_code == 400, r.text
    assert message in r.json()["error"]


def test_list_shows_public_tapes_newest_first_without_spans(
    alice: ApiUser, bob: ApiUser, server: RunningServer
) -> None:
    public_old = _publish(alice, _trace(), title="old")
    unlisted = _publish(alice, _trace(), visibility="unlisted")
    public_new = _publish(bob, _trace(), title="new")
    with _anonymous(server) as anonymous:
        r = anonymous.get("/api/v1/tapes", params={"limit": 100})
        assert anonymous.get(f"/api/v1/tapes/{unlisted['slug']}").status_code == 200
    assert r.status_code == 200
    body = r.json()
    slugs = [t["slug"] for t in body["data"]]
    assert unlisted["slug"] not in slugs
    assert slugs.index(public_new["slug"]) < slugs.index(public_old["slug"])
    assert all("spans" not in t and t["visibility"] == "public" for t in body["data"])
    assert body["limit"] == 100 and body["offset"] == 0 and body["total"] >= 2


def test_list_mine_shows_both_visibilities_of_the_caller_only(alice: ApiUser, bob: ApiUser) -> None:
    mine = {_publish(alice, _trace())["slug"], _publish(alice, _trace(), visibility="unlisted")["slug"]}
    _publish(bob, _trace())
    body = alice.client.get("/api/v1/tapes", params={"mine": "true"}).json()
    assert {t["slug"] for t in body["data"]} == mine
    assert body["total"] == 2


def test_list_mine_needs_credentials_and_bad_paging_is_400(server: RunningServer) -> None:
    with _anonymous(server) as anonymous:
        assert anonymous.get("/api/v1/tapes", params={"mine": "true"}).status_code == 401
        r = anonymous.get("/api/v1/tapes", params={"limit": 0})
    assert r.status_code == 400
    assert "limit" in r.json()["error"]
