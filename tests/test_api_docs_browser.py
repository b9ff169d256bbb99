"""`/docs` in a real browser, with every request to another host refused: Swagger UI renders the
API from the package's own files, and "Try it out" authenticates with an API key."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Route, sync_playwright

from tests.support.server import ApiUser, RunningServer, create_user

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Without the background-networking switches, Chromium keeps reaching for its own services.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def key_owner(server: RunningServer) -> ApiUser:
    # Made before the browser starts: Playwright's sync API holds an event loop in this thread.
    return create_user(server)


@pytest.fixture(scope="module")
def browser(key_owner: ApiUser, backend: str) -> Iterator[Browser]:
    if backend != "sqlite":
        pytest.skip("the browser test of the docs runs once, on SQLite: the page is the same on both")
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (Debian package `chromium`)")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def test_docs_render_offline_and_try_it_out_authenticates(
    browser: Browser, server: RunningServer, key_owner: ApiUser
) -> None:
    page = browser.new_page()
    elsewhere: list[str] = []

    def only_this_server(route: Route) -> None:
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_server)
    page.goto(f"{server.url}/docs")
    page.wait_for_selector(".opblock", timeout=60_000)
    assert page.locator(".opblock").count() >= 30
    assert elsewhere == []

    page.click("button.authorize")
    schemes = page.locator(".auth-container")
    assert [" ".join(t.split()) for t in schemes.locator("h4").all_inner_texts()] == [
        "ApiKey (apiKey)",
        "Bearer (http, Bearer)",
    ]
    api_key = schemes.nth(0)
    api_key.locator("input").fill(key_owner.key)
    api_key.locator("button.authorize").click()
    page.locator(".modal-ux .close-modal").click()

    operation = page.locator("#operations-api-keys-get_api_key_api_v1_api_keys_get")
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("button.execute").click()
    status = operation.locator(".live-responses-table .response .response-col_status")
    status.wait_for(timeout=30_000)
    assert status.inner_text().strip().startswith("200")
    assert '"exists": true' in operation.locator(".live-responses-table .microlight").first.inner_text()
    assert elsewhere == []
    page.close()
