"""Guardrail policies: the five kinds, their validation, ownership and changes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.server import ApiUser

POLICIES = "/api/v1/enforcement/policies"


def _create(user: ApiUser, **body: Any) -> dict[str, Any]:
    r = user.client.post(POLICIES, json={"name": "guard", **body})
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


def test_each_kind_is_created_with_its_fields(alice: ApiUser) -> None:
    run = _create(alice, kind="run_budget", max_usd=0.5, max_steps=40, project_id="billing")
    assert (run["kind"], run["action"], run["max_usd"], run["max_steps"], run["max_tokens"]) == (
        "run_budget",
        "block",
        0.5,
        40,
        None,
    )
    assert run["project_id"] == "billing" and run["enabled"] is True
    period = _create(alice, kind="period_budget", period="day", max_tokens=100_000, trace_name="support")
    assert (period["period"], period["max_tokens"], period["trace_name"]) == ("day", 100_000, "support")
    loop = _create(alice, kind="tool_loop", max_repeats=3, action="hold")
    assert (loop["max_repeats"], loop["action"], loop["timeout_s"], loop["on_timeout"]) == (
        3,
        "hold",
        300,
        "deny",
    )
    deny = _create(alice, kind="tool_deny", tools=["drop_table"])
    assert deny["tools"] == ["drop_table"] and deny["timeout_s"] is None
    approval = _create(alice, kind="tool_approval", tools=["refund"], timeout_s=60, on_timeout="allow")
    assert (approval["action"], approval["timeout_s"], approval["on_timeout"]) == ("hold", 60, "allow")

    listed = alice.client.get(POLICIES).json()
    assert listed["total"] == 5
    assert [p["id"] for p in listed["data"]] == [p["id"] for p in (run, period, loop, deny, approval)]
    assert alice.client.get(POLICIES, params={"kind": "tool_deny"}).json()["data"] == [deny]
    assert alice.client.get(POLICIES, params={"project_id": "billing"}).json()["total"] == 1
    assert alice.client.get(f"{POLICIES}/{approval['id']}").json() == approval


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "spend_limit", "max_usd": 1}, "kind"),
        ({"max_usd": 1}, "kind"),
        ({"kind": "run_budget", "max_usd": -0.01}, "max_usd"),
        ({"kind": "run_budget", "max_tokens": -5}, "max_tokens"),
        ({"kind": "run_budget", "max_steps": -1}, "max_steps"),
        ({"kind": "period_budget", "period": "day", "max_usd": -3}, "max_usd"),
        ({"kind": "period_budget", "period": "week", "max_usd": 3}, "period"),
        ({"kind": "run_budget"}, "max_usd"),
        ({"kind": "tool_loop", "max_repeats": 0}, "max_repeats"),
        ({"kind": "tool_deny", "tools": []}, "tools"),
        ({"kind": "tool_approval", "tools": ["x"], "timeout_s": 0}, "timeout_s"),
        ({"kind": "tool_approval", "tools": ["x"], "action": "block"}, "action"),
        ({"kind": "tool_deny", "tools": ["x"], "timeout_s": 30}, "timeout_s"),
        ({"kind": "tool_deny", "tools": ["x"], "colour": "red"}, "colour"),
    ],
)
def test_bad_policies_answer_400_naming_the_field(alice: ApiUser, body: dict[str, Any], field: str) -> None:
    r = alice.client.post(POLICIES, json={"name": "bad", **body})
    assert r.status_code == 400, r.text
    assert r.json()["error"].startswith(f"{field}:"), r.json()
    assert alice.client.get(POLICIES).json()["total"] == 0


def test_unknown_kind_message_lists_the_kinds(alice: ApiUser) -> None:
    r = alice.client.post(POLICIES, json={"name": "bad", "kind": "spend_limit"})
    assert r.status_code == 400
    assert "'spend_limit'" in r.json()["error"] and "tool_approval" in r.json()["error"]


def test_patch_changes_fields_and_validates_the_result(alice: ApiUser) -> None:
    policy = _create(alice, kind="run_budget", max_usd=1.0)
    r = alice.client.patch(f"{POLICIES}/{policy['id']}", json={"max_tokens": 5000, "enabled": False})
    assert r.status_code == 200, r.text
    assert (r.json()["max_usd"], r.json()["max_tokens"], r.json()["enabled"]) == (1.0, 5000, False)
    assert r.json()["updated_at"] >= policy["updated_at"]

    r = alice.client.patch(f"{POLICIES}/{policy['id']}", json={"max_usd": -2})
    assert r.status_code == 400 and r.json()["error"].startswith("max_usd:")
    r = alice.client.patch(f"{POLICIES}/{policy['id']}", json={"max_usd": None, "max_tokens": None})
    assert r.status_code == 400 and "at least one" in r.json()["error"]
    assert alice.client.get(f"{POLICIES}/{policy['id']}").json()["max_tokens"] == 5000

    r = alice.client.patch(f"{POLICIES}/{policy['id']}", json={"action": "hold", "timeout_s": 45})
    assert (r.json()["action"], r.json()["timeout_s"], r.json()["on_timeout"]) == ("hold", 45, "deny")
    r = alice.client.patch(f"{POLICIES}/{policy['id']}", json={"action": "block"})
    assert (r.json()["action"], r.json()["timeout_s"]) == ("block", None)

    r = alice.client.patch(f"{POLICIES}/{policy['id']}", json={"kind": "tool_deny", "tools": ["rm"]})
    assert r.status_code == 200, r.text
    assert (r.json()["kind"], r.json()["tools"], r.json()["max_usd"], r.json()["name"]) == (
        "tool_deny",
        ["rm"],
        None,
        "guard",
    )
    for body in ([1, 2], {}, {"id": "other"}):
        r = alice.client.patch(f"{POLICIES}/{policy['id']}", json=body)
        assert r.status_code == 400, body


def test_delete_and_other_users_policies(alice: ApiUser, bob: ApiUser) -> None:
    policy = _create(alice, kind="tool_deny", tools=["rm"])
    path = f"{POLICIES}/{policy['id']}"
    assert bob.client.get(path).status_code == 404
    assert bob.client.patch(path, json={"enabled": False}).status_code == 404
    assert bob.client.delete(path).status_code == 404
    assert bob.client.get(POLICIES).json()["total"] == 0
    assert alice.client.delete(path).status_code == 204
    r = alice.client.get(path)
    assert r.status_code == 404 and r.json() == {"error": "Policy not found"}


def test_policy_routes_need_credentials(server: Any) -> None:
    import httpx

    r = httpx.post(f"{server.url}{POLICIES}", json={"name": "x", "kind": "tool_deny", "tools": ["rm"]})
    assert r.status_code == 401
    assert httpx.post(f"{server.url}/api/v1/enforcement/check", json={"run_id": "r"}).status_code == 401
