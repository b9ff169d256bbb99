from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support.server import ApiUser


def _span(i: int, **over: Any) -> dict[str, Any]:
    return {
        "id": f"span-{i}-{uuid.uuid4().hex[:6]}",
        "span_type": "llm_call" if i % 2 == 0 else "tool_call",
        "name": f"step-{i}",
        "model": "gpt-4o-mini",
        "input": {"messages": [{"role": "user", "content": f"question {i}"}]},
        "output": f"answer {i}",
        "input_tokens": 10,
        "output_tokens": 5,
        "cost": 0.001,
        "started_at": f"2026-11-28T10:00:{i:02d}Z",
        "ended_at": f"2026-11-28T10:00:{i:02d}.500Z",
        **over,
    }


def _trace(**over: Any) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "name": "checkout-agent", "started_at": "2026-11-28T10:00:00Z", **over}


def test_create_with_spans_keeps_totals(alice: ApiUser) -> None:
    spans = [_span(i) for i in range(3)]
    r = alice.client.post("/api/v1/traces", json=_trace(spans=spans))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["span_count"] == 3
    assert body["total_tokens"] == 45
    assert abs(body["total_cost"] - 0.003) < 1e-9
    assert body["total_duration_ms"] == 2500
    assert body["status"] == "running"
    assert body["started_at"].endswith("Z")


def test_same_trace_id_twice_is_conflict(alice: ApiUser) -> None:
    trace = _trace()
    assert alice.client.post("/api/v1/traces", json=trace).status_code == 201
    r = alice.client.post("/api/v1/traces", json=trace)
    assert r.status_code == 409
    assert "already exists" in r.json()["error"]


def test_span_ids_are_upserted_not_duplicated(alice: ApiUser) -> None:
    trace = _trace(spans=[_span(0), _span(1)])
    alice.client.post("/api/v1/traces", json=trace)
    changed = {**trace["spans"][0], "output": "rewritten", "output_tokens": 50}
    r = alice.client.patch(f"/api/v1/traces/{trace['id']}", json={"spans": [changed, _span(2)]})
    assert r.status_code == 200, r.text
    assert r.json()["span_count"] == 3
    assert r.json()["total_tokens"] == 10 + 50 + 15 + 15
    full = alice.client.get(f"/api/v1/traces/{trace['id']}").json()
    assert full["spans"][0]["output"] == "rewritten"
    assert len({s["id"] for s in full["spans"]}) == 3


def test_patch_terminal_fields(alice: ApiUser) -> None:
    trace = _trace(spans=[_span(0)])
    alice.client.post("/api/v1/traces", json=trace)
    r = alice.client.patch(
        f"/api/v1/traces/{trace['id']}",
        json={
            "status": "failed",
            "output": {"answer": 42},
            "ended_at": "2026-11-28T10:00:07Z",
            "error": "ValueError: boom",
            "lossy": True,
            "terminated_early": True,
            "span_count": 1,
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "failed"
    assert body["output"] == {"answer": 42}
    assert body["error"] == "ValueError: boom"
    assert body["lossy"] is True
    assert body["total_duration_ms"] == 7000
    assert body["metadata"]["terminated_early"] is True


def test_unknown_fields_are_kept_in_metadata(alice: ApiUser) -> None:
    trace = _trace(team="search", spans=[_span(0, token_ids=[1, 2], metadata={"provider": "openai"})])
    alice.client.post("/api/v1/traces", json=trace)
    full = alice.client.get(f"/api/v1/traces/{trace['id']}").json()
    assert full["metadata"]["team"] == "search"
    assert full["spans"][0]["metadata"] == {"provider": "openai", "token_ids": [1, 2]}


def test_project_id_is_a_field_that_lists_filter_by(alice: ApiUser) -> None:
    ours, other = _trace(project_id="proj-1"), _trace(project_id="proj-2")
    for trace in (ours, other):
        assert alice.client.post("/api/v1/traces", json=trace).status_code == 201
    assert alice.client.get(f"/api/v1/traces/{ours['id']}").json()["project_id"] == "proj-1"
    listed = alice.client.get("/api/v1/traces", params={"project_id": "proj-1"}).json()
    assert [t["id"] for t in listed["data"]] == [ours["id"]]


def test_get_returns_spans_in_start_order_with_parents(alice: ApiUser) -> None:
    root = _span(0)
    child = _span(1, parent_id=root["id"])
    late = _span(5)
    trace = _trace(spans=[late, child, root])
    alice.client.post("/api/v1/traces", json=trace)
    spans = alice.client.get(f"/api/v1/traces/{trace['id']}").json()["spans"]
    assert [s["id"] for s in spans] == [root["id"], child["id"], late["id"]]
    assert spans[1]["parent_id"] == root["id"]


def test_list_filters_and_envelope(alice: ApiUser) -> None:
    session = f"sess-{uuid.uuid4().hex[:6]}"
    ids = []
    for i, status in enumerate(["running", "completed", "failed"]):
        t = _trace(
            name=f"Refund flow {i}",
            status=status,
            session_id=session,
            started_at=f"2026-11-2{i + 1}T10:00:00Z",
        )
        ids.append(t["id"])
        assert alice.client.post("/api/v1/traces", json=t).status_code == 201
    alice.client.post("/api/v1/traces", json=_trace(name="other"))

    r = alice.client.get("/api/v1/traces", params={"session_id": session})
    body = r.json()
    assert set(body) == {"data", "total", "limit", "offset"}
    assert body["total"] == 3 and body["limit"] == 20 and body["offset"] == 0
    assert [t["id"] for t in body["data"]] == list(reversed(ids))

    assert [
        t["id"] for t in alice.client.get("/api/v1/traces", params={"status": "failed"}).json()["data"]
    ] == [ids[2]]
    named = alice.client.get("/api/v1/traces", params={"name": "refund FLOW"}).json()
    assert named["total"] == 3
    window = alice.client.get(
        "/api/v1/traces", params={"since": "2026-11-22T00:00:00Z", "until": "2026-11-23T00:00:00Z"}
    ).json()
    assert [t["id"] for t in window["data"]] == [ids[1]]
    page = alice.client.get("/api/v1/traces", params={"session_id": session, "limit": 1, "offset": 1}).json()
    assert [t["id"] for t in page["data"]] == [ids[1]] and page["total"] == 3


def test_list_rejects_bad_parameters(alice: ApiUser) -> None:
    for params in ({"limit": 0}, {"limit": 101}, {"offset": -1}, {"status": "done"}, {"since": "yesterday"}):
        r = alice.client.get("/api/v1/traces", params=params)
        assert r.status_code == 400, params
        assert next(iter(params)) in r.json()["error"]


def test_delete_removes_trace_and_spans(alice: ApiUser) -> None:
    trace = _trace(spans=[_span(0)])
    alice.client.post("/api/v1/traces", json=trace)
    assert alice.client.delete(f"/api/v1/traces/{trace['id']}").status_code == 204
    assert alice.client.get(f"/api/v1/traces/{trace['id']}").status_code == 404
    assert alice.client.delete(f"/api/v1/traces/{trace['id']}").status_code == 404
    # The id is free again, and the old spans are gone.
    assert alice.client.post("/api/v1/traces", json={**trace, "spans": []}).json()["span_count"] == 0


def test_invalid_span_names_index_and_field_and_writes_nothing(alice: ApiUser) -> None:
    trace = _trace(spans=[_span(0), _span(1, started_at="not a date")])
    r = alice.client.post("/api/v1/traces", json=trace)
    assert r.status_code == 400
    assert "spans[1].started_at" in r.json()["error"]
    assert alice.client.get(f"/api/v1/traces/{trace['id']}").status_code == 404

    for bad_span, field in (
        ({"span_type": "banana"}, "spans[0].span_type"),
        ({"input_tokens": -1}, "spans[0].input_tokens"),
        ({"trace_id": "another"}, "spans[0].trace_id"),
    ):
        r = alice.client.post("/api/v1/traces", json=_trace(spans=[_span(0, **bad_span)]))
        assert r.status_code == 400 and field in r.json()["error"], r.text


def test_failed_patch_loses_nothing(alice: ApiUser) -> None:
    trace = _trace(spans=[_span(0)])
    alice.client.post("/api/v1/traces", json=trace)
    r = alice.client.patch(f"/api/v1/traces/{trace['id']}", json={"spans": [_span(1), _span(2, cost=-1)]})
    assert r.status_code == 400 and "spans[1].cost" in r.json()["error"]
    assert alice.client.get(f"/api/v1/traces/{trace['id']}").json()["span_count"] == 1


def test_tenant_isolation(alice: ApiUser, bob: ApiUser) -> None:
    trace = _trace(spans=[_span(0)])
    alice.client.post("/api/v1/traces", json=trace)
    tid = trace["id"]
    assert bob.client.get(f"/api/v1/traces/{tid}").status_code == 404
    assert bob.client.patch(f"/api/v1/traces/{tid}", json={"status": "completed"}).status_code == 404
    assert bob.client.patch(f"/api/v1/traces/{tid}", json={"spans": [_span(9)]}).status_code == 404
    assert bob.client.delete(f"/api/v1/traces/{tid}").status_code == 404
    assert tid not in {t["id"] for t in bob.client.get("/api/v1/traces").json()["data"]}
    # Ids are unique per user: Bob's trace of the same id is his own, and tells him nothing.
    created = bob.client.post("/api/v1/traces", json={"id": tid, "status": "completed"})
    assert created.status_code == 201
    assert bob.client.get(f"/api/v1/traces/{tid}").json()["span_count"] == 0
    still = alice.client.get(f"/api/v1/traces/{tid}").json()
    assert still["status"] == "running" and still["span_count"] == 1
    assert bob.client.delete(f"/api/v1/traces/{tid}").status_code == 204
    assert alice.client.get(f"/api/v1/traces/{tid}").status_code == 200


@pytest.mark.parametrize("bad_id", ["run/1", "run 1", "a?b", "50%", "..", "x" * 129])
def test_ids_must_be_addressable(alice: ApiUser, bad_id: str) -> None:
    answer = alice.client.post("/api/v1/traces", json={"id": bad_id})
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("id: ")
    span = alice.client.post("/api/v1/traces", json={"spans": [{"id": bad_id}]})
    assert span.status_code == 400 and span.json()["error"].startswith("spans[0].id: ")


def test_name_filter_is_a_literal_substring(alice: ApiUser) -> None:
    names = ["etl_job_nightly", "etlXjobXnightly", "100% refund", "1000 refund"]
    ids = {}
    for name in names:
        t = _trace(name=name)
        ids[name] = t["id"]
        alice.client.post("/api/v1/traces", json=t)
    found = alice.client.get("/api/v1/traces", params={"name": "l_job_n"}).json()["data"]
    assert [t["name"] for t in found] == ["etl_job_nightly"]
    found = alice.client.get("/api/v1/traces", params={"name": "0% r"}).json()["data"]
    assert [t["name"] for t in found] == ["100% refund"]
    # Short needles (below the trigram size) work too.
    assert {t["name"] for t in alice.client.get("/api/v1/traces", params={"name": "X"}).json()["data"]} == {
        "etlXjobXnightly"
    } | {n for n in names if "x" in n.lower()}
    renamed = alice.client.patch(f"/api/v1/traces/{ids['1000 refund']}", json={"name": "thousand"})
    assert renamed.status_code == 200
    assert alice.client.get("/api/v1/traces", params={"name": "1000 ref"}).json()["total"] == 0
    assert alice.client.get("/api/v1/traces", params={"name": "thousand"}).json()["total"] == 1


def test_totals_follow_creates_status_changes_and_deletes(bob: ApiUser) -> None:
    ids = []
    for i in range(7):
        t = _trace(status="running" if i % 2 else "completed", started_at=f"2026-10-0{i + 1}T00:00:00Z")
        ids.append(t["id"])
        assert bob.client.post("/api/v1/traces", json=t).status_code == 201

    def total(**params: Any) -> int:
        return int(bob.client.get("/api/v1/traces", params=params).json()["total"])

    assert (total(), total(status="running"), total(status="completed")) == (7, 3, 4)
    patched = bob.client.patch(f"/api/v1/traces/{ids[1]}", json={"status": "failed"})
    assert patched.status_code == 200 and patched.json()["status"] == "failed", patched.text
    bob.client.delete(f"/api/v1/traces/{ids[0]}")
    assert (total(), total(status="running"), total(status="completed"), total(status="failed")) == (
        6,
        2,
        3,
        1,
    )

    newest_first = list(reversed(ids[1:]))
    pages = [
        bob.client.get("/api/v1/traces", params={"limit": 2, "offset": o}).json()["data"]
        for o in (0, 2, 4, 6)
    ]
    assert [t["id"] for page in pages for t in page] == newest_first
    assert (
        bob.client.get("/api/v1/traces", params={"limit": 4, "offset": 5}).json()["data"][0]["id"] == ids[1]
    )


def test_concurrent_creates_with_a_duplicate_fail_only_the_duplicate(alice: ApiUser) -> None:
    from concurrent.futures import ThreadPoolExecutor

    traces = [_trace(spans=[_span(i)]) for i in range(12)]
    traces.append({**traces[3], "spans": [_span(59)]})
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda t: alice.client.post("/api/v1/traces", json=t).status_code, traces))
    assert sorted(statuses) == [201] * 12 + [409]
    for trace in traces[:12]:
        stored = alice.client.get(f"/api/v1/traces/{trace['id']}").json()
        assert stored["span_count"] == 1
    assert alice.client.get(f"/api/v1/traces/{traces[3]['id']}").json()["spans"][0]["id"] in {
        traces[3]["spans"][0]["id"],
        traces[12]["spans"][0]["id"],
    }


def test_get_renders_every_span_field(alice: ApiUser) -> None:
    span = _span(
        3,
        parent_id="root-span",
        metadata={"provider": "openai", "nested": {"quote": 'say "hi"\n'}},
        agent_id="planner",
        parent_agent_id="orchestrator",
        agent_role="planner",
        error="Timeout: tool took 30s",
        duration_ms=1234,
    )
    trace = _trace(spans=[span])
    alice.client.post("/api/v1/traces", json=trace)
    stored = alice.client.get(f"/api/v1/traces/{trace['id']}").json()["spans"][0]
    assert stored == {
        **{k: v for k, v in span.items() if k not in ("started_at", "ended_at")},
        "cost_source": "reported",
        "trace_id": trace["id"],
        "started_at": "2026-11-28T10:00:03.000000Z",
        "ended_at": "2026-11-28T10:00:03.500000Z",
    }


def test_pages_far_into_a_long_list(make_user: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor
    from datetime import timedelta

    user = make_user()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    stamps = [(start + timedelta(minutes=i)).isoformat() for i in range(2100)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        created = list(
            pool.map(lambda at: user.client.post("/api/v1/traces", json=_trace(started_at=at)).json(), stamps)
        )
    newest_first = [t["id"] for t in sorted(created, key=lambda t: t["started_at"], reverse=True)]
    # Far enough from both ends that the page is found through the index before its rows are read.
    for offset in (1020, 1060):
        page = user.client.get("/api/v1/traces", params={"limit": 30, "offset": offset}).json()
        assert page["total"] == 2100
        assert [t["id"] for t in page["data"]] == newest_first[offset : offset + 30]


def test_get_renders_every_trace_field(alice: ApiUser) -> None:
    trace = _trace(
        status="failed",
        input={"question": "Wo ist mein Paket? 📦", "attempt": 2, "tags": ["a", None, 1.5]},
        output=["partial", {"ok": False}],
        metadata={"env": "prod", "nested": {"quote": 'say "hi"\n'}},
        session_id="session-7",
        error="RateLimitError: slow down",
        lossy=True,
        ended_at="2026-11-28T10:05:00.250Z",
        spans=[_span(0)],
    )
    assert alice.client.post("/api/v1/traces", json=trace).status_code == 201
    stored = alice.client.get(f"/api/v1/traces/{trace['id']}").json()
    expected = {k: v for k, v in trace.items() if k not in ("spans", "started_at", "ended_at")}
    assert {k: stored[k] for k in expected} == expected
    assert datetime.fromisoformat(stored["started_at"]) == datetime(2026, 11, 28, 10, tzinfo=UTC)
    assert datetime.fromisoformat(stored["ended_at"]) == datetime(2026, 11, 28, 10, 5, 0, 250000, tzinfo=UTC)
    assert stored["total_duration_ms"] == 300250


def test_a_long_batch_is_stored_whole_or_not_at_all(alice: ApiUser) -> None:
    """A first batch longer than one insert statement holds is still one write."""

    def spans() -> list[dict[str, Any]]:
        stamps = [f"2026-11-28T10:{i // 60:02d}:{i % 60:02d}Z" for i in range(300)]
        return [_span(i, started_at=at, ended_at=None) for i, at in enumerate(stamps)]

    trace = _trace(spans=spans())
    r = alice.client.post("/api/v1/traces", json=trace)
    assert r.status_code == 201, r.text
    assert r.json()["span_count"] == 300
    stored = alice.client.get(f"/api/v1/traces/{trace['id']}").json()
    assert [s["id"] for s in stored["spans"]] == [s["id"] for s in trace["spans"]]
    again = alice.client.post("/api/v1/traces", json={**trace, "spans": spans()})
    assert again.status_code == 409
    assert alice.client.get(f"/api/v1/traces/{trace['id']}").json()["span_count"] == 300
