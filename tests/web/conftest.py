"""Browser tests: Playwright drives the system's Chromium against a real server.

Chromium comes from the operating system (`apt-get install chromium`), never from a download.
Screenshots of every page from the last run are kept in `tests/web/screenshots/` (not committed).
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Cookie,
    Page,
    Playwright,
    ViewportSize,
    expect,
    sync_playwright,
)

from retrace_server.config import Settings
from tests.conftest import POSTGRES_URL
from tests.fakes.llm_server import FakeLLMServer
from tests.forks.conftest import provider_settings
from tests.support.server import ApiUser, RunningServer, create_user, fresh_database, start_server

CHROMIUM = os.environ.get("RETRACE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HERE = Path(__file__).parent
SCREENSHOTS = HERE / "screenshots"
AXE_SOURCE = (HERE / "vendor" / "axe-4.14.1.min.js").read_text()
VIEWPORT: ViewportSize = {"width": 1440, "height": 900}


BROWSER_ON_SQLITE_ONLY = (
    "browser tests run once, on SQLite: the pages read and write through the same services that "
    "every API test runs on both databases"
)


@pytest.fixture(scope="module")
def sqlite_only(backend: str) -> None:
    """Used first by browser modules (`pytestmark`), before their server starts."""
    if backend != "sqlite":
        pytest.skip(BROWSER_ON_SQLITE_ONLY)


# Module-scoped: while Playwright's driver lives, its event loop runs on this thread, and other
# modules' set-up (asyncio.run) must not meet it.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install it with `apt-get install -y chromium`")
    launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
    yield launched
    launched.close()


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as fake:
        yield fake


@pytest.fixture(scope="session")
def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """As the suite's, made and dropped away from Playwright's thread (both run an asyncio loop)."""
    database = fresh_database(backend, str(tmp_path_factory.mktemp(backend)), POSTGRES_URL)
    url: str = off_the_browser_thread(database.__enter__)
    yield url
    off_the_browser_thread(lambda: database.__exit__(None, None, None))


@pytest.fixture(scope="module")
def web(make_settings: Callable[..., Settings], llm: FakeLLMServer) -> Iterator[RunningServer]:
    """A server with rate limits on (high enough never to refuse a test) and the fake LLM as provider."""
    settings = make_settings(
        **provider_settings(llm),
        rate_limit_enabled=True,
        rate_limit_free_read=100_000,
        rate_limit_free_write=100_000,
        rate_limit_ip=100_000,
        rate_limit_auth_failures=100_000,
        replay_wait_s=0.5,
    )
    server: RunningServer = off_the_browser_thread(lambda: start_server(settings))
    yield server
    server.stop()


def off_the_browser_thread(work: Callable[[], Any]) -> Any:
    """Runs set-up that starts an asyncio loop of its own away from Playwright's thread."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(work).result()


@pytest.fixture
def make_web_user(web: RunningServer) -> Callable[[], ApiUser]:
    return lambda: off_the_browser_thread(lambda: create_user(web))


@pytest.fixture
def context(browser: Browser, web: RunningServer) -> Iterator[BrowserContext]:
    ctx = browser.new_context(base_url=web.url, viewport=VIEWPORT)
    ctx.set_default_timeout(20_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def sign_in(page: Page, user: ApiUser) -> None:
    page.goto("/signin")
    page.get_by_label("API key").fill(user.key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Runs")).to_be_visible()


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=False)


def serious_accessibility_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical findings on the page as it is now."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE_SOURCE)
    results = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [n["html"][:200] for n in v["nodes"][:3]],
        }
        for v in results["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def post_trace(user: ApiUser, trace: dict[str, Any]) -> dict[str, Any]:
    """Stores the run through the API; answers it as the API reads it back, spans included."""
    response = user.client.post("/api/v1/traces", json=trace)
    assert response.status_code == 201, response.text
    stored: dict[str, Any] = user.client.get(f"/api/v1/traces/{trace['id']}").json()
    return stored


def wait_for_fork(user: ApiUser, fork_id: str) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + 60
    while True:
        fork: dict[str, Any] = user.client.get(f"/api/v1/forks/{fork_id}").json()
        if fork["status"] not in ("created", "running") or time.monotonic() > deadline:
            return fork
        time.sleep(0.1)


def session_cookie(context: BrowserContext) -> Cookie:
    return next(c for c in context.cookies() if c["name"] == "retrace_session")


def cookie_client(web: RunningServer, context: BrowserContext) -> httpx.Client:
    """An HTTP client carrying the browser's session cookie (for requests a page would never send)."""
    cookie = session_cookie(context)
    return httpx.Client(base_url=web.url, cookies={cookie["name"]: cookie["value"]}, timeout=30)
