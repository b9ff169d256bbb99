"""The web interface in Chromium: sign in, runs, a run's tree and timeline, fork and replay,
the diff, publishing a tape, script injection, accessibility, sign out."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.fakes.llm_server import FakeLLMServer
from tests.forks.agent import run_travel_agent
from tests.support.server import ApiUser, RunningServer
from tests.web.conftest import (
    VIEWPORT,
    post_trace,
    screenshot,
    serious_accessibility_violations,
    session_cookie,
    sign_in,
    wait_for_fork,
)
from tests.web.runs import nested_run, wide_run

INJECTION = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 1">'

pytestmark = pytest.mark.usefixtures("sqlite_only")


def assert_not_run(page: Page) -> None:
    assert page.evaluate("typeof window.__pwned") == "undefined"


def assert_accessible(page: Page, name: str) -> None:
    screenshot(page, name)
    violations = serious_accessibility_violations(page)
    assert violations == [], f"{name}: {violations}"


def test_sign_in_list_and_sign_out(
    page: Page, context: BrowserContext, make_web_user: Callable[[], ApiUser]
) -> None:
    user = make_web_user()
    post_trace(user, nested_run(name="refund-agent"))
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/signin\?next=/$"))
    assert_accessible(page, "signin")
    page.get_by_label("API key").fill("rt_live_not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not valid")
    sign_in(page, user)
    cookie = session_cookie(context)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert page.evaluate("document.cookie") == ""
    assert user.key not in page.content()
    expect(page.get_by_role("link", name="refund-agent")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/signin$"))
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/signin"))


def test_runs_list_filters_and_live_updates(page: Page, make_web_user: Callable[[], ApiUser]) -> None:
    user = make_web_user()
    post_trace(user, nested_run(name="billing-agent"))
    failed = nested_run(name="failing-agent", status="failed")
    post_trace(user, failed)
    running = nested_run(name="live-agent", status="running")
    post_trace(user, running)
    sign_in(page, user)
    rows = page.locator("#runs-body tr")
    expect(rows).to_have_count(3)
    live_row = page.locator(f'tr[data-id="{running["id"]}"]')
    expect(live_row.locator(".pill")).to_have_text("Running")
    assert_accessible(page, "runs")
    user.client.patch(
        f"/api/v1/traces/{running['id']}",
        json={"status": "completed", "ended_at": running["spans"][0]["ended_at"]},
    )
    expect(live_row.locator(".pill")).to_have_text("Completed", timeout=15_000)
    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Apply").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("failing-agent")
    page.goto("/?name=billing")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("billing-agent")


def test_search_links_to_the_span(page: Page, make_web_user: Callable[[], ApiUser]) -> None:
    user = make_web_user()
    run = post_trace(user, nested_run())
    sign_in(page, user)
    page.get_by_label("Search spans").fill("refunds service")
    page.get_by_role("button", name="Search").click()
    hit = page.locator(".result").first
    expect(hit).to_contain_text("check_refund")
    expect(hit.locator("mark").first).to_be_visible()
    assert_accessible(page, "search")
    hit.get_by_role("link", name="check_refund").click()
    expect(page).to_have_url(re.compile(rf"/traces/{run['id']}#span-refund-"))
    expect(page.locator("#panel h2")).to_have_text("check_refund")
    expect(page.locator("#panel .error-box")).to_contain_text("refunds service did not answer")


def test_open_a_run_expand_collapse_and_select(page: Page, make_web_user: Callable[[], ApiUser]) -> None:
    user = make_web_user()
    run = post_trace(user, nested_run())
    sign_in(page, user)
    page.get_by_role("link", name="support-agent").click()
    tree = page.get_by_role("tree")
    items = page.get_by_role("treeitem")
    expect(items).to_have_count(5)
    expect(page.locator("#run-header h1")).to_have_text("support-agent")
    # The first span is selected; its panel shows it.
    expect(page.locator("#panel h2")).to_have_text("handle_ticket")
    # Collapse the root by its caret, then open it again with the keyboard.
    root = items.filter(has_text="handle_ticket")
    root.locator(".tv-caret").click()
    expect(items).to_have_count(1)
    expect(root).to_have_attribute("aria-expanded", "false")
    tree.focus()
    page.keyboard.press("ArrowRight")
    expect(items).to_have_count(5)
    page.keyboard.press("ArrowDown")
    expect(page.locator("#panel h2")).to_have_text("plan")
    expect(page).to_have_url(re.compile(r"#span-plan-"))
    panel = page.locator("#panel")
    expect(panel.locator(".msg-system")).to_contain_text("support agent of a web shop")
    expect(panel.locator(".msg-user")).to_contain_text("Where is my order #4417?")
    expect(panel.locator(".toolcall-head")).to_contain_text("lookup_order")
    expect(panel.locator(".toolcall pre")).to_contain_text('"order": 4417')
    expect(panel.locator(".param").first).to_contain_text("temperature")
    expect(panel).to_contain_text("$0.0001")
    panel.get_by_text("Raw JSON").click()
    expect(panel.locator("details.raw pre")).to_contain_text('"span_type": "llm_call"')
    # Nested tool, collapsed and reopened with the keyboard.
    lookup = items.filter(has_text="lookup_order")
    lookup.click()
    expect(page.locator("#panel .kv")).to_contain_text("180 ms")
    page.keyboard.press("ArrowLeft")
    expect(items).to_have_count(4)
    page.keyboard.press("Enter")
    expect(items).to_have_count(5)
    page.keyboard.press("ArrowDown")
    expect(page.locator("#panel h2")).to_have_text("check_refund")
    expect(items.filter(has_text="check_refund").locator(".tv-bar")).to_have_class(re.compile(r"\berr\b"))
    assert_accessible(page, "trace")
    # A link to a span selects it.
    reply_id = run["spans"][4]["id"]
    page.goto(f"/traces/{run['id']}#span-{reply_id}")
    expect(page.locator("#panel h2")).to_have_text("reply")
    expect(page.locator("#panel .msg-tool")).to_contain_text("call_1")


def test_a_big_run_renders_only_the_rows_in_view(page: Page, make_web_user: Callable[[], ApiUser]) -> None:
    user = make_web_user()
    run = post_trace(user, wide_run(3000))
    sign_in(page, user)
    page.goto(f"/traces/{run['id']}")
    expect(page.locator(".tv-count")).to_have_text("3,000 spans")
    rendered = page.locator(".tv-row:not([hidden])").count()
    assert 0 < rendered < 120
    last = run["spans"][-1]["id"]
    page.goto(f"/traces/{run['id']}#span-{last}")
    expect(page.locator("#panel h2")).to_have_text(run["spans"][-1]["name"])
    page.locator(".tv-filter").fill("fetch_url 2990")
    expect(page.get_by_role("treeitem").filter(has_text="fetch_url 2990")).to_be_visible()


def test_fork_replay_and_diff(page: Page, make_web_user: Callable[[], ApiUser], llm: FakeLLMServer) -> None:
    user = make_web_user()
    run = run_travel_agent(user, llm, question="What should I wear in Paris today?")
    sign_in(page, user)
    page.goto(f"/traces/{run['id']}#span-{run['spans'][0]['id']}")
    expect(page.locator("#panel h2")).to_have_text("plan")
    page.get_by_role("button", name="Fork from here").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    assert_accessible(page, "fork-dialog")
    user_message = dialog.get_by_label("user message 2")
    user_message.fill("What should I wear in Rome tomorrow?")
    dialog.get_by_label("Fork name").fill("Rome instead")
    dialog.get_by_label("Temperature").fill("0.3")
    dialog.get_by_role("button", name="Fork and replay").click()
    expect(page).to_have_url(re.compile(r"/forks/[0-9a-f-]+$"))
    expect(page.get_by_role("heading", name="Rome instead")).to_be_visible()
    expect(page.locator("#verdict")).to_be_visible(timeout=30_000)
    first = page.locator("tr[data-first-divergence]")
    expect(first).to_have_id("step-0")
    expect(first).to_be_in_viewport()
    expect(page.locator(".words ins").first).to_contain_text("Rome")
    expect(page.locator(".words del").first).to_contain_text("Paris")
    expect(page.locator("#fork-runs tbody tr")).to_have_count(1)
    assert_accessible(page, "fork")
    fork_id = page.url.rsplit("/", 1)[1]
    fork = wait_for_fork(user, fork_id)
    assert fork["status"] == "completed" and fork["parameters"] == {"temperature": 0.3}
    assert fork["modified_input"]["messages"][1]["content"] == "What should I wear in Rome tomorrow?"
    page.get_by_role("button", name="Replay again").click()
    expect(page.locator("#fork-runs tbody tr")).to_have_count(2, timeout=30_000)
    page.goto("/forks")
    expect(page.get_by_role("link", name="Rome instead")).to_be_visible()
    assert_accessible(page, "forks")


def test_publish_a_tape_and_open_it_signed_out(
    page: Page, browser: Browser, web: RunningServer, make_web_user: Callable[[], ApiUser]
) -> None:
    user = make_web_user()
    leaky = nested_run(name="leaky-agent")
    leaky["spans"][2]["output"] = {
        "status": "shipped",
        "debug": "used key sk-proj-abcdefghijklmnopqrstuvwxyz0123",
    }
    leaky["spans"][4]["metadata"] = {"authorization": "Bearer abcdefghijklmnop1234567890"}
    run = post_trace(user, leaky)
    sign_in(page, user)
    page.goto(f"/traces/{run['id']}")
    page.get_by_role("link", name="Share…").click()
    preview = page.locator("#redaction-preview")
    expect(preview).to_contain_text("OpenAI API key")
    expect(preview).to_contain_text("Value of a secret-named field")
    expect(page.get_by_text("Publishing will hide")).to_contain_text("2 secrets")
    assert_accessible(page, "share")
    page.get_by_label("Title").fill("How the agent found order 4417")
    page.get_by_label("Description").fill("A support run, shared for review.")
    page.get_by_role("button", name="Publish tape").click()
    link = page.locator("#new-tape-link")
    expect(link).to_have_value(re.compile(r"/t/[A-Za-z0-9_-]{16}$"))
    assert_accessible(page, "tapes")
    slug = link.input_value().rsplit("/", 1)[1]

    anonymous = browser.new_context(base_url=web.url, viewport=VIEWPORT)
    try:
        public = anonymous.new_page()
        public.goto(f"/t/{slug}")
        expect(public.get_by_role("heading", name="How the agent found order 4417")).to_be_visible()
        expect(public.get_by_text("A support run, shared for review.")).to_be_visible()
        expect(public.get_by_text(re.compile(r"1 view"))).to_be_visible()
        assert (
            public.locator('meta[property="og:title"]').get_attribute("content")
            == "How the agent found order 4417"
        )
        assert (
            public.locator('meta[property="og:url"]').get_attribute("content")
            == f"http://retrace.test/t/{slug}"
        )
        expect(public.get_by_role("treeitem")).to_have_count(5)
        expect(public.get_by_role("button", name="Fork from here")).to_have_count(0)
        public.get_by_role("treeitem").filter(has_text="lookup_order").click()
        expect(public.locator("#panel")).to_contain_text("[REDACTED:openai_key]")
        assert "sk-proj-abcdefghij" not in public.content()
        assert_accessible(public, "tape")
        assert anonymous.cookies() == []
    finally:
        anonymous.close()


def test_run_content_is_only_ever_text(
    page: Page, make_web_user: Callable[[], ApiUser], llm: FakeLLMServer
) -> None:
    user = make_web_user()
    hostile = nested_run(name=f"agent {INJECTION}", text=f"order {INJECTION}")
    for span in hostile["spans"]:
        span["name"] = f"{span['name']} {INJECTION}"
    hostile["spans"][2]["output"] = {"html": INJECTION}
    hostile["spans"][4]["output"] = f"Sure! {INJECTION}"
    run = post_trace(user, hostile)
    user.client.post("/api/v1/memory", json={"content": f"remember {INJECTION}", "category": "fact"})
    user.client.post(
        "/api/v1/skills",
        json={"name": f"skill {INJECTION}", "prompt_template": f"Say {INJECTION}", "description": INJECTION},
    )
    # A fork whose replay outputs carry the markup too (the fake model quotes its input).
    fork = user.client.post(
        "/api/v1/forks",
        json={
            "trace_id": run["id"],
            "fork_point_span_id": run["spans"][1]["id"],
            "modified_input": f"now {INJECTION}",
        },
    ).json()
    user.client.post(f"/api/v1/forks/{fork['id']}/replay", json={"mode": "server"})
    wait_for_fork(user, fork["id"])
    tape = user.client.post(
        "/api/v1/tapes", json={"trace_id": run["id"], "title": f"tape {INJECTION}", "description": INJECTION}
    ).json()
    skill_id = user.client.get("/api/v1/skills").json()["data"][0]["id"]
    sign_in(page, user)
    pages: list[tuple[str, Any]] = [
        (
            "/",
            lambda: expect(page.locator("#runs-body")).to_contain_text("<script>window.__pwned = 1</script>"),
        ),
        (
            f"/traces/{run['id']}#span-{run['spans'][4]['id']}",
            lambda: expect(page.locator("#panel")).to_contain_text(
                '<img src=x onerror="window.__pwned = 1">'
            ),
        ),
        (
            f"/traces/{run['id']}#span-{run['spans'][2]['id']}",
            lambda: expect(page.locator("#panel")).to_contain_text("<script>"),
        ),
        (
            f"/forks/{fork['id']}",
            lambda: expect(page.locator(".diff-table").first).to_contain_text("<script>"),
        ),
        (f"/t/{tape['slug']}", lambda: expect(page.locator("h1").first).to_contain_text("<script>")),
        ("/search?q=refunds", lambda: expect(page.locator(".result").first).to_contain_text("<script>")),
        ("/memory", lambda: expect(page.locator("table.data")).to_contain_text("<img src=x")),
        ("/skills", lambda: expect(page.locator("table.data")).to_contain_text("<script>")),
        (f"/skills/{skill_id}", lambda: expect(page.locator("pre.json").first).to_contain_text("<script>")),
        (
            f"/traces/{run['id']}/share",
            lambda: expect(page.get_by_label("Title")).to_have_value(re.compile("<script>")),
        ),
        ("/tapes", lambda: expect(page.locator("table.data")).to_contain_text("<script>")),
    ]
    for path, shows_markup_as_text in pages:
        page.goto(path)
        shows_markup_as_text()
        assert page.locator("img[src='x']").count() == 0, path
        assert_not_run(page)


def test_every_page_is_accessible(page: Page, make_web_user: Callable[[], ApiUser]) -> None:
    user = make_web_user()
    run = post_trace(user, nested_run())
    entry = user.client.post(
        "/api/v1/memory",
        json={"content": "The customer prefers DHL", "scope": "customer:42", "category": "preference"},
    ).json()
    skill = user.client.post(
        "/api/v1/skills",
        json={
            "name": "triage",
            "description": "Sort a ticket",
            "prompt_template": "Sort {ticket} by urgency",
            "tags": ["support"],
        },
    ).json()
    user.client.patch(
        f"/api/v1/skills/{skill['id']}", json={"prompt_template": "Sort {ticket} by urgency and topic"}
    )
    sign_in(page, user)
    for name, path in (
        ("memory", "/memory"),
        ("memory-search", "/memory?q=shipping+carrier"),
        ("memory-entry", f"/memory/{entry['id']}"),
        ("skills", "/skills"),
        ("skill", f"/skills/{skill['id']}"),
        ("skill-version", f"/skills/{skill['id']}/versions/2"),
        ("settings", "/settings"),
        ("not-found", f"/traces/{run['id']}-missing"),
    ):
        page.goto(path)
        assert_accessible(page, name)
    page.goto(f"/skills/{skill['id']}/versions/2")
    expect(page.locator(".words ins")).to_contain_text("and topic")
    page.goto("/settings")
    expect(page.get_by_text("This minute")).to_be_visible()
    time.sleep(0)
