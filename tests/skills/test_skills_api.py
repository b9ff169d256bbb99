from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.support.server import ApiUser, RunningServer


def _skill(**over: Any) -> dict[str, Any]:
    return {
        "name": f"refund-{uuid.uuid4().hex[:8]}",
        "description": "Refunds an order after checking the policy",
        "prompt_template": 'Refund order {order_id} for {customer}; reply as JSON {{"ok": true}}',
        "tools": ["lookup_order", {"name": "refund", "parameters": {"type": "object"}}],
        "max_iterations": 5,
        "error_handling": "retry",
        "memory_scope": "customer",
        "scope": "project:checkout",
        "tags": ["billing", "refunds"],
        "metadata": {"owner": "payments"},
        **over,
    }


def _create(user: ApiUser, **over: Any) -> dict[str, Any]:
    r = user.client.post("/api/v1/skills", json=_skill(**over))
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def test_create_returns_version_1_with_variables(alice: ApiUser) -> None:
    payload = _skill()
    skill = _create(alice, **payload)
    assert skill["version"] == 1
    assert skill["variables"] == ["order_id", "customer"]
    for field in ("name", "prompt_template", "tools", "max_iterations", "error_handling", "scope", "tags"):
        assert skill[field] == payload[field]
    assert skill["is_public"] is False
    assert skill["metadata"] == {"owner": "payments"}
    assert alice.client.get(f"/api/v1/skills/{skill['id']}").json() == skill


def test_defaults_for_optional_fields(alice: ApiUser) -> None:
    r = alice.client.post("/api/v1/skills", json={"name": "tiny", "prompt_template": "Say hi"})
    assert r.status_code == 201, r.text
    skill = r.json()
    assert skill["variables"] == []
    assert (skill["tools"], skill["tags"], skill["metadata"]) == ([], [], {})
    assert (skill["max_iterations"], skill["error_handling"], skill["scope"]) == (10, "fail", None)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("Refund {order_id", "unbalanced '{' at position 7"),
        ("Refund order_id}", "unbalanced '}' at position 15"),
        ("Refund {order_{id}}", "unbalanced '{'"),
        ("Refund {}", "invalid variable {}"),
        ("Refund {order id}", "invalid variable {order id}"),
    ],
)
def test_bad_templates_are_400(alice: ApiUser, template: str, message: str) -> None:
    r = alice.client.post("/api/v1/skills", json=_skill(prompt_template=template))
    assert r.status_code == 400
    error = r.json()["error"]
    assert error.startswith("prompt_template")
    assert message in error


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"name": ""}, "name"),
        ({"error_handling": "ignore"}, "error_handling"),
        ({"max_iterations": 0}, "max_iterations"),
        ({"tools": [3]}, "tools[0]"),
        ({"tags": ["a,b"]}, "tags[0]"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_fields_are_400(alice: ApiUser, over: dict[str, Any], field: str) -> None:
    r = alice.client.post("/api/v1/skills", json=_skill(**over))
    assert r.status_code == 400
    assert r.json()["error"].startswith(field)


def test_duplicate_name_is_409(alice: ApiUser, bob: ApiUser) -> None:
    skill = _create(alice)
    r = alice.client.post("/api/v1/skills", json=_skill(name=skill["name"]))
    assert r.status_code == 409
    assert "already have a skill" in r.json()["error"]
    assert bob.client.post("/api/v1/skills", json=_skill(name=skill["name"])).status_code == 201
    other = _create(alice)
    assert (
        alice.client.patch(f"/api/v1/skills/{other['id']}", json={"name": skill["name"]}).status_code == 409
    )


def test_patch_changes_given_fields_and_bumps_version(alice: ApiUser) -> None:
    skill = _create(alice)
    r = alice.client.patch(
        f"/api/v1/skills/{skill['id']}",
        json={"prompt_template": "Refund {order_id} in {currency}", "scope": None},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["version"] == 2
    assert body["variables"] == ["order_id", "currency"]
    assert body["scope"] is None
    assert body["tags"] == skill["tags"] and body["description"] == skill["description"]
    assert body["updated_at"] >= skill["updated_at"]


def test_patch_that_changes_nothing_keeps_the_version(alice: ApiUser) -> None:
    skill = _create(alice)
    for body in ({}, {"name": skill["name"], "tags": skill["tags"]}):
        r = alice.client.patch(f"/api/v1/skills/{skill['id']}", json=body)
        assert r.status_code == 200
        assert r.json()["version"] == 1
    assert alice.client.get(f"/api/v1/skills/{skill['id']}/versions").json()["total"] == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": None}, "name cannot be null"),
        ({"prompt_template": "{x"}, "prompt_template"),
        ({"version": 7}, "version"),
    ],
)
def test_bad_patches_are_400(alice: ApiUser, body: dict[str, Any], message: str) -> None:
    skill = _create(alice)
    r = alice.client.patch(f"/api/v1/skills/{skill['id']}", json=body)
    assert r.status_code == 400
    assert message in r.json()["error"]


def test_version_history_and_rollback(alice: ApiUser) -> None:
    skill = _create(alice)
    sid = skill["id"]
    alice.client.patch(f"/api/v1/skills/{sid}", json={"description": "v2", "tags": ["billing"]})
    alice.client.patch(f"/api/v1/skills/{sid}", json={"max_iterations": 9})

    history = alice.client.get(f"/api/v1/skills/{sid}/versions").json()
    assert history["total"] == 3
    assert [v["version"] for v in history["data"]] == [3, 2, 1]
    assert history["data"][0]["changed_fields"] == ["max_iterations"]
    assert history["data"][1]["changed_fields"] == ["description", "tags"]

    first = alice.client.get(f"/api/v1/skills/{sid}/versions/1").json()
    assert first["description"] == skill["description"] and first["variables"] == skill["variables"]
    rollback = {k: first[k] for k in ("description", "tags", "max_iterations")}
    restored = alice.client.patch(f"/api/v1/skills/{sid}", json=rollback).json()
    assert restored["version"] == 4
    assert {k: restored[k] for k in rollback} == rollback
    assert alice.client.get(f"/api/v1/skills/{sid}/versions/4").json()["changed_fields"] == [
        "description",
        "max_iterations",
        "tags",
    ]
    assert alice.client.get(f"/api/v1/skills/{sid}/versions/5").status_code == 404
    assert alice.client.get(f"/api/v1/skills/{sid}/versions/0").status_code == 400


def test_list_filters_combine(alice: ApiUser) -> None:
    scope = f"project:{uuid.uuid4().hex[:6]}"
    both = _create(alice, scope=scope, tags=["a", "b", "c"])
    only_a = _create(alice, scope=scope, tags=["a"])
    elsewhere = _create(alice, scope="project:other", tags=["a", "b"])

    def ids(**params: str) -> set[str]:
        body = alice.client.get("/api/v1/skills", params={"limit": "100", **params}).json()
        return {s["id"] for s in body["data"]}

    assert ids(scope=scope) == {both["id"], only_a["id"]}
    assert ids(scope=scope, tags="a,b") == {both["id"]}
    assert ids(tags="a") >= {both["id"], only_a["id"], elsewhere["id"]}
    assert ids(tags="b, a") == {both["id"], elsewhere["id"]}
    assert ids(tags="zzz") == set()
    envelope = alice.client.get("/api/v1/skills", params={"scope": scope, "limit": 1}).json()
    assert (envelope["total"], envelope["limit"], envelope["offset"], len(envelope["data"])) == (2, 1, 0, 1)
    assert envelope["data"][0]["id"] == only_a["id"]


def test_tag_filter_follows_patches(alice: ApiUser) -> None:
    skill = _create(alice, tags=["old"])
    alice.client.patch(f"/api/v1/skills/{skill['id']}", json={"tags": ["new"]})
    old = alice.client.get("/api/v1/skills", params={"tags": "old"}).json()["data"]
    new = alice.client.get("/api/v1/skills", params={"tags": "new"}).json()["data"]
    assert [s["id"] for s in old] == []
    assert [s["id"] for s in new] == [skill["id"]]


def test_other_users_skills_are_hidden(alice: ApiUser, bob: ApiUser) -> None:
    skill = _create(alice)
    sid = skill["id"]
    assert bob.client.get(f"/api/v1/skills/{sid}").status_code == 404
    assert bob.client.patch(f"/api/v1/skills/{sid}", json={"description": "x"}).status_code == 404
    assert bob.client.delete(f"/api/v1/skills/{sid}").status_code == 404
    assert bob.client.get(f"/api/v1/skills/{sid}/versions").status_code == 404
    assert bob.client.get(f"/api/v1/skills/{sid}/versions/1").status_code == 404
    assert sid not in {s["id"] for s in bob.client.get("/api/v1/skills").json()["data"]}
    assert alice.client.get(f"/api/v1/skills/{sid}").json()["description"] == skill["description"]


def test_public_skills_are_readable_not_writable_by_others(alice: ApiUser, bob: ApiUser) -> None:
    skill = _create(alice, is_public=True)
    sid = skill["id"]
    assert bob.client.get(f"/api/v1/skills/{sid}").json()["name"] == skill["name"]
    assert sid not in {s["id"] for s in bob.client.get("/api/v1/skills").json()["data"]}
    listed = bob.client.get("/api/v1/skills", params={"include_public": "true", "limit": 100}).json()["data"]
    assert sid in {s["id"] for s in listed}
    assert bob.client.patch(f"/api/v1/skills/{sid}", json={"description": "x"}).status_code == 404
    assert bob.client.get(f"/api/v1/skills/{sid}/versions").status_code == 404


def test_delete_removes_skill_and_history(alice: ApiUser) -> None:
    skill = _create(alice)
    sid = skill["id"]
    alice.client.patch(f"/api/v1/skills/{sid}", json={"description": "v2"})
    assert alice.client.delete(f"/api/v1/skills/{sid}").status_code == 204
    assert alice.client.get(f"/api/v1/skills/{sid}").status_code == 404
    assert alice.client.get(f"/api/v1/skills/{sid}/versions").status_code == 404
    assert alice.client.delete(f"/api/v1/skills/{sid}").status_code == 404
    # The name is free again.
    assert alice.client.post("/api/v1/skills", json=_skill(name=skill["name"])).status_code == 201


def test_skills_need_credentials(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as anonymous:
        r = anonymous.get("/api/v1/skills")
    assert r.status_code == 401
    assert "error" in r.json()


def _concurrent_patches(
    server: RunningServer, user: ApiUser, skill_id: str, bodies: list[dict[str, Any]]
) -> list[int]:
    def patch(body: dict[str, Any]) -> int:
        with httpx.Client(base_url=server.url, headers={"x-retrace-key": user.key}, timeout=60) as client:
            r = client.patch(f"/api/v1/skills/{skill_id}", json=body)
        assert r.status_code == 200, r.text
        version: int = r.json()["version"]
        return version

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(patch, bodies))


def test_concurrent_patches_of_one_field_each_get_their_own_version(
    alice: ApiUser, server: RunningServer
) -> None:
    skill = _create(alice)
    edits = [f"edit {i}" for i in range(12)]
    versions = _concurrent_patches(server, alice, skill["id"], [{"description": e} for e in edits])
    assert sorted(versions) == list(range(2, 14))
    history = alice.client.get(f"/api/v1/skills/{skill['id']}/versions", params={"limit": 100}).json()
    assert [v["version"] for v in history["data"]] == list(range(13, 0, -1))
    assert {v["description"] for v in history["data"][:12]} == set(edits)


def test_concurrent_patches_of_different_fields_lose_nothing(alice: ApiUser, server: RunningServer) -> None:
    skill = _create(alice)
    bodies: list[dict[str, Any]] = [
        {"description": "new description"},
        {"prompt_template": "Refund {order_id} now"},
        {"tools": ["refund"]},
        {"max_iterations": 42},
        {"error_handling": "fallback"},
        {"memory_scope": "order"},
        {"scope": "project:refunds"},
        {"tags": ["urgent"]},
        {"is_public": True},
        {"metadata": {"owner": "support"}},
    ]
    versions = _concurrent_patches(server, alice, skill["id"], bodies)
    assert sorted(versions) == list(range(2, 12))
    final = alice.client.get(f"/api/v1/skills/{skill['id']}").json()
    assert final["version"] == 11
    for body in bodies:
        for field, value in body.items():
            assert final[field] == value, field
