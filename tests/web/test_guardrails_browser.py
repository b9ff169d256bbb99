"""Golden baselines, regression verdicts and guardrails in Chromium: mark a run golden, see a later
run regress against it and compare the two step by step; create, disable and delete policies;
approve a held tool call."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.baselines.test_baselines_api import _record
from tests.support.server import ApiUser
from tests.web.conftest import sign_in
from tests.web.test_browser import INJECTION, assert_accessible, assert_not_run

pytestmark = pytest.mark.usefixtures("sqlite_only")


def _wait_for_verdict(user: ApiUser, trace_id: str) -> dict[str, Any]:
    """The run's verdict once the comparison that follows its write has run."""
    deadline = time.monotonic() + 30
    while True:
        regression: dict[str, Any] | None = user.client.get(f"/api/v1/traces/{trace_id}").json()["regression"]
        if regression is not None:
            return regression
        assert time.monotonic() < deadline, "the run was never compared with its baseline"
        time.sleep(0.1)


def test_mark_golden_and_see_a_later_run_regress(page: Page, make_web_user: Callable[[], ApiUser]) -> None:
    user = make_web_user()
    baseline = _record(user, minute=0, tools=["lookup_order"], name=f"support {INJECTION}")
    sign_in(page, user)
    page.goto(f"/traces/{baseline}")
    expect(page.locator("#run-checks")).to_have_count(0)
    page.get_by_role("button", name="Mark as golden").click()
    expect(page).to_have_url(re.compile(rf"/traces/{baseline}$"))
    expect(page.locator("#run-checks .badge-golden")).to_have_text("Golden")
    expect(page.get_by_role("button", name="Unmark golden")).to_be_visible()
    assert user.client.get(f"/api/v1/traces/{baseline}/golden").json()["golden"] is True
    assert_not_run(page)
    assert_accessible(page, "trace-golden")

    passing = _record(user, minute=1, tools=["lookup_order"], name=f"support {INJECTION}")
    regressed = _record(user, minute=2, tools=["lookup_order", "refund_order"], name=f"support {INJECTION}")
    assert _wait_for_verdict(user, passing)["verdict"] == "pass"
    assert _wait_for_verdict(user, regressed)["verdict"] == "regressed"

    page.goto("/")
    rows = page.locator("#runs-body tr")
    expect(rows).to_have_count(3)
    expect(page.locator(f'tr[data-id="{baseline}"] .badge-golden')).to_be_visible()
    expect(page.locator(f'tr[data-id="{passing}"] .checks .pill')).to_have_text("Pass")
    verdict = page.locator(f'tr[data-id="{regressed}"] .checks .pill')
    expect(verdict).to_have_text("Regressed")
    assert_not_run(page)
    assert_accessible(page, "runs-verdicts")
    page.get_by_label("Baseline").select_option("regressed")
    page.get_by_role("button", name="Apply").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-id", regressed)
    page.get_by_label("Baseline").select_option("golden")
    page.get_by_role("button", name="Apply").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-id", baseline)

    page.goto(f"/traces/{regressed}")
    expect(page.locator("#run-verdict")).to_have_text("Regressed")
    expect(page.locator("#run-checks")).to_contain_text("lookup_order became lookup_order → refund_order")
    assert_accessible(page, "trace-regressed")
    page.get_by_role("link", name="Compare step by step").click()
    expect(page).to_have_url(re.compile(rf"/traces/{regressed}/regression$"))
    expect(page.locator("#verdict")).to_have_text("Regressed")
    table = page.get_by_role("table", name="Steps of the baseline and this run, aligned")
    added = table.locator("tr.added")
    expect(added).to_have_count(1)
    expect(added).to_contain_text("refund_order")
    expect(page.locator(".findings")).to_contain_text("tool calls lookup_order became")
    assert_not_run(page)
    assert_accessible(page, "regression")
    page.get_by_role("link", name="Open baseline run").click()
    expect(page).to_have_url(re.compile(rf"/traces/{baseline}$"))
    page.get_by_role("button", name="Unmark golden").click()
    expect(page.get_by_role("button", name="Mark as golden")).to_be_visible()
    assert user.client.get(f"/api/v1/traces/{baseline}/golden").json()["golden"] is False


def test_a_run_page_names_the_policies_the_run_broke(
    page: Page, make_web_user: Callable[[], ApiUser]
) -> None:
    user = make_web_user()
    r = user.client.post(
        "/api/v1/enforcement/policies",
        json={"name": f"budget {INJECTION}", "kind": "run_budget", "max_tokens": 100},
    )
    assert r.status_code == 201, r.text
    over = _record(user, minute=0, tools=[])
    sign_in(page, user)
    page.goto(f"/traces/{over}")
    expect(page.locator("#run-checks")).to_contain_text(f"Broke budget {INJECTION}")
    expect(page.locator("#run-checks")).to_contain_text("240 tokens")
    assert_not_run(page)


def test_create_policies_and_approve_a_pending_hold(page: Page, make_web_user: Callable[[], ApiUser]) -> None:
    user = make_web_user()
    sign_in(page, user)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Guardrails").click()
    expect(page).to_have_url(re.compile(r"/guardrails$"))
    expect(page.get_by_role("heading", name="Guardrails", level=1)).to_be_visible()
    assert_accessible(page, "guardrails-empty")

    form = page.locator("#policy-form")
    # A run budget without any ceiling is refused, the form kept as it was.
    form.get_by_label("Name", exact=True).fill(f"budget {INJECTION}")
    form.get_by_label("Kind").select_option("run_budget")
    form.get_by_role("button", name="Create policy").click()
    expect(page.locator("#policy-error")).to_be_visible()
    expect(form.get_by_label("Name", exact=True)).to_have_value(f"budget {INJECTION}")
    # The kind's own settings show; the others' are hidden.
    expect(form.get_by_label("Max steps")).to_be_visible()
    expect(form.get_by_label("Max repeats of one call")).to_be_hidden()
    form.locator("#rb-tokens").fill("5000")
    form.get_by_role("button", name="Create policy").click()
    expect(page.locator(".notice-ok")).to_have_text("Policy created.")
    policies = page.locator("#policies tbody tr")
    expect(policies).to_have_count(1)
    expect(policies.first).to_contain_text(f"budget {INJECTION}")
    expect(policies.first).to_contain_text("≤ 5,000 tokens")

    form.get_by_label("Name", exact=True).fill("refunds need a person")
    form.get_by_label("Kind").select_option("tool_approval")
    expect(form.get_by_label("Action")).to_be_disabled()
    form.locator("#ta-tools").fill("refund_order, wire_money")
    form.get_by_label("Seconds to decide").fill("600")
    form.get_by_role("button", name="Create policy").click()
    expect(policies).to_have_count(2)
    approval = policies.filter(has_text="refunds need a person")
    expect(approval).to_contain_text("refund_order, wire_money")
    expect(approval).to_contain_text("600s, then deny")
    [created] = [
        p
        for p in user.client.get("/api/v1/enforcement/policies").json()["data"]
        if p["kind"] == "tool_approval"
    ]
    assert (created["tools"], created["timeout_s"], created["action"]) == (
        ["refund_order", "wire_money"],
        600,
        "hold",
    )

    # The agent asks to run a tool that needs approval: the hold waits on the page.
    held = user.client.post(
        "/api/v1/enforcement/check", json={"run_id": "run-42", "span_id": "s1", "tool_name": "refund_order"}
    ).json()
    assert held["verdict"] == "hold"
    page.reload()
    pending = page.locator("#pending-holds tbody tr")
    expect(pending).to_have_count(1)
    expect(pending.first).to_contain_text("refund_order")
    expect(pending.first).to_contain_text("run-42")
    assert_not_run(page)
    assert_accessible(page, "guardrails")
    pending.first.get_by_role("button", name=re.compile("^Approve")).click()
    expect(page.locator(".notice-ok")).to_contain_text("Approved")
    expect(page.locator("#pending-holds")).to_have_count(0)
    hold = user.client.get(f"/api/v1/enforcement/holds/{held['hold_id']}").json()
    assert (hold["status"], hold["verdict"]) == ("approved", "allow")
    again = user.client.post(
        "/api/v1/enforcement/check", json={"run_id": "run-42", "span_id": "s1", "tool_name": "refund_order"}
    ).json()
    assert again["verdict"] == "allow"
    # A second hold is denied.
    second = user.client.post(
        "/api/v1/enforcement/check", json={"run_id": "run-43", "span_id": "s1", "tool_name": "wire_money"}
    ).json()
    page.reload()
    page.locator("#pending-holds tbody tr").first.get_by_role("button", name=re.compile("^Deny")).click()
    expect(page.locator(".notice-ok")).to_contain_text("Denied")
    assert user.client.get(f"/api/v1/enforcement/holds/{second['hold_id']}").json()["status"] == "denied"
    expect(page.locator("#decided-holds tbody tr")).to_have_count(2)

    # Disable, enable and delete.
    budget = policies.filter(has_text="budget")
    budget.get_by_role("button", name=re.compile("^Disable")).click()
    expect(page.locator(".notice-ok")).to_have_text("Policy disabled.")
    expect(budget).to_contain_text("Disabled")
    budget.get_by_role("button", name=re.compile("^Enable")).click()
    expect(budget).to_contain_text("Enabled")
    page.once("dialog", lambda dialog: dialog.accept())
    budget.get_by_role("button", name=re.compile("^Delete")).click()
    expect(page.locator(".notice-ok")).to_have_text("Policy deleted.")
    expect(policies).to_have_count(1)
    assert_not_run(page)


def test_guardrail_forms_need_the_page_s_token(page: Page, make_web_user: Callable[[], ApiUser]) -> None:
    user = make_web_user()
    sign_in(page, user)
    baseline = _record(user, minute=0, tools=[])
    for path, form in (
        (f"/traces/{baseline}/golden", {"golden": "true"}),
        ("/guardrails/policies", {"name": "x", "kind": "tool_deny", "tool_deny-tools": "rm"}),
    ):
        response = page.request.post(path, form={**form, "csrf_token": "forged"})
        assert response.status == 403, path
    assert user.client.get(f"/api/v1/traces/{baseline}/golden").json()["golden"] is False
    assert user.client.get("/api/v1/enforcement/policies").json()["total"] == 0
