"""Signing in, sessions and cross-site protection, over plain HTTP (no browser needed)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import httpx
import pytest

from retrace_server.config import Settings
from tests.support.server import ApiUser, RunningServer, create_user, running_server
from tests.web.runs import nested_run


@pytest.fixture(scope="module")
def site(make_settings: Callable[..., Settings]) -> Iterator[RunningServer]:
    with running_server(make_settings()) as server:
        yield server


@pytest.fixture
def user(site: RunningServer) -> ApiUser:
    return create_user(site)


def browser_client(site: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=site.url, headers={"accept": "text/html"}, timeout=30)


def signed_in(site: RunningServer, user: ApiUser) -> httpx.Client:
    client = browser_client(site)
    r = client.post("/signin", data={"api_key": user.key, "next": "/"}, headers={"origin": site.url})
    assert r.status_code == 303 and r.headers["location"] == "/", r.text
    return client


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert match, "the page carries no CSRF token"
    return match.group(1)


def test_pages_need_a_session_and_the_api_stays_json(site: RunningServer) -> None:
    client = browser_client(site)
    r = client.get("/traces/abc?x=1")
    assert r.status_code == 303 and r.headers["location"] == "/signin?next=/traces/abc%3Fx%3D1"
    assert client.get("/signin").status_code == 200
    api = httpx.get(f"{site.url}/api/v1/traces")
    assert api.status_code == 401 and api.json()["error"].startswith("Authentication required")
    # A client that does not ask for HTML keeps the JSON envelope everywhere.
    assert httpx.get(f"{site.url}/no-such-page").json() == {"error": "Not found"}
    page = client.get("/no-such-page")
    assert page.status_code == 404 and "text/html" in page.headers["content-type"]


def test_sign_in_sets_a_protected_cookie_and_never_shows_the_key(site: RunningServer, user: ApiUser) -> None:
    client = browser_client(site)
    r = client.post("/signin", data={"api_key": user.key, "next": "/settings"}, headers={"origin": site.url})
    assert r.status_code == 303 and r.headers["location"] == "/settings"
    cookie = r.headers["set-cookie"]
    assert "retrace_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain HTTP here; behind HTTPS the cookie is Secure
    assert user.key not in cookie
    for path in ("/", "/settings"):
        page = client.get(path)
        assert page.status_code == 200 and user.key not in page.text


def test_a_wrong_key_is_refused_and_counted(site: RunningServer) -> None:
    client = browser_client(site)
    r = client.post("/signin", data={"api_key": "rt_live_nope"}, headers={"origin": site.url})
    assert (
        r.status_code == 401
        and "not valid" in r.text
        and "retrace_session" not in r.headers.get("set-cookie", "")
    )
    r = client.post("/signin", data={"api_key": ""}, headers={"origin": site.url})
    assert r.status_code == 400


def test_sign_in_only_redirects_within_the_site(site: RunningServer, user: ApiUser) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        client = browser_client(site)
        r = client.post("/signin", data={"api_key": user.key, "next": target}, headers={"origin": site.url})
        assert r.headers["location"] == "/"


def test_sign_out_ends_the_session_for_good(site: RunningServer, user: ApiUser) -> None:
    client = signed_in(site, user)
    token = client.cookies["retrace_session"]
    page = client.get("/")
    r = client.post("/signout", data={"csrf_token": csrf_of(page.text)}, headers={"origin": site.url})
    assert r.status_code == 303 and r.headers["location"] == "/signin"
    replayed = browser_client(site)
    replayed.cookies.set("retrace_session", token)
    assert replayed.get("/").status_code == 303


def test_state_changes_need_the_csrf_token_and_this_origin(site: RunningServer, user: ApiUser) -> None:
    entry = user.client.post("/api/v1/memory", json={"content": "likes window seats"}).json()
    client = signed_in(site, user)
    token = csrf_of(client.get("/memory").text)
    url = f"/memory/{entry['id']}/delete"
    assert client.post(url, data={}, headers={"origin": site.url}).status_code == 403
    assert client.post(url, data={"csrf_token": "forged"}, headers={"origin": site.url}).status_code == 403
    assert (
        client.post(url, data={"csrf_token": token}, headers={"origin": "https://evil.example"}).status_code
        == 403
    )
    assert user.client.get(f"/api/v1/memory/{entry['id']}").status_code == 200
    r = client.post(url, data={"csrf_token": token}, headers={"origin": site.url})
    assert r.status_code == 303
    assert user.client.get(f"/api/v1/memory/{entry['id']}").status_code == 404
    # The script endpoints take the token in a header.
    fork = client.post(
        "/_/forks", json={"trace_id": "x", "fork_point_span_id": "y"}, headers={"origin": site.url}
    )
    assert fork.status_code == 403 and "error" in fork.json()


def test_revoking_or_rotating_the_key_elsewhere_ends_its_sessions(site: RunningServer, user: ApiUser) -> None:
    client = signed_in(site, user)
    assert client.get("/").status_code == 200
    assert user.client.post("/api/v1/api-keys").status_code == 201  # rotated through the API
    assert client.get("/").status_code == 303


def test_rotating_from_settings_keeps_this_browser_signed_in(site: RunningServer, user: ApiUser) -> None:
    client = signed_in(site, user)
    other_browser = signed_in(site, user)
    token = csrf_of(client.get("/settings").text)
    page = client.post("/settings/key", data={"csrf_token": token}, headers={"origin": site.url})
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    new_key = re.search(r'id="new-key" type="text" readonly value="([^"]+)"', page.text)
    assert new_key and new_key.group(1).startswith("rt_")
    assert client.get("/settings").status_code == 200
    assert new_key.group(1) not in client.get("/settings").text  # shown once
    assert other_browser.get("/").status_code == 303
    assert user.client.get("/api/v1/traces").status_code == 401  # the old key stopped working
    assert (
        httpx.get(f"{site.url}/api/v1/traces", headers={"x-retrace-key": new_key.group(1)}).status_code == 200
    )
    r = client.post("/settings/key/revoke", data={"csrf_token": token}, headers={"origin": site.url})
    assert r.headers["location"] == "/signin?notice=revoked"
    assert client.get("/").status_code == 303


def test_expired_sessions_sign_in_again(make_settings: Callable[..., Settings]) -> None:
    with running_server(make_settings(web_session_hours=1 / 3600 / 10)) as server:
        user = create_user(server)
        client = browser_client(server)
        client.post("/signin", data={"api_key": user.key}, headers={"origin": server.url})
        assert client.get("/").status_code == 303


def test_pages_carry_a_policy_without_inline_scripts(site: RunningServer, user: ApiUser) -> None:
    client = signed_in(site, user)
    trace = user.client.post("/api/v1/traces", json=nested_run()).json()
    for path in ("/", f"/traces/{trace['id']}", "/signin", "/settings", "/guardrails"):
        r = client.get(path)
        policy = r.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert r.headers["x-content-type-options"] == "nosniff"
        # Every script is a file of the site; data blocks are JSON, never executed.
        for tag in re.findall(r"<script[^>]*>", r.text):
            assert 'src="/static/' in tag or 'type="application/json"' in tag, tag


def test_another_users_things_are_not_found(site: RunningServer, user: ApiUser) -> None:
    other = create_user(site)
    trace = nested_run()
    assert other.client.post("/api/v1/traces", json=trace).status_code == 201
    memory = other.client.post("/api/v1/memory", json={"content": "prefers aisle seats"}).json()
    fork = other.client.post(
        "/api/v1/forks", json={"trace_id": trace["id"], "fork_point_span_id": trace["spans"][1]["id"]}
    ).json()
    client = signed_in(site, user)
    for path in (
        f"/traces/{trace['id']}",
        f"/memory/{memory['id']}",
        f"/forks/{fork['id']}",
        f"/traces/{trace['id']}/share",
    ):
        r = client.get(path)
        assert r.status_code == 404 and "text/html" in r.headers["content-type"], path
        assert "handle_ticket" not in r.text and "aisle" not in r.text


def test_baseline_and_guardrail_forms_are_guarded_and_private(site: RunningServer, user: ApiUser) -> None:
    other = create_user(site)
    trace = nested_run()
    assert other.client.post("/api/v1/traces", json=trace).status_code == 201
    policy = other.client.post(
        "/api/v1/enforcement/policies", json={"name": "refunds", "kind": "tool_approval", "tools": ["refund"]}
    ).json()
    hold = other.client.post(
        "/api/v1/enforcement/check", json={"run_id": "r1", "span_id": "s1", "tool_name": "refund"}
    ).json()
    client = signed_in(site, user)
    token = csrf_of(client.get("/guardrails").text)
    own = user.client.post("/api/v1/traces", json=nested_run()).json()
    # Without this site's token, or from another site, nothing changes.
    golden = f"/traces/{own['id']}/golden"
    assert client.post(golden, data={"golden": "true"}, headers={"origin": site.url}).status_code == 403
    cross_site = {"golden": "true", "csrf_token": token}
    assert client.post(golden, data=cross_site, headers={"origin": "https://evil.example"}).status_code == 403
    assert user.client.get(f"/api/v1/traces/{own['id']}").json()["golden"] is False
    r = client.post(golden, data={"golden": "true", "csrf_token": token}, headers={"origin": site.url})
    assert r.status_code == 303 and user.client.get(f"/api/v1/traces/{own['id']}").json()["golden"] is True
    # Another user's run, policy and hold are not found, whatever the form.
    for path in (
        f"/traces/{trace['id']}/golden",
        f"/guardrails/policies/{policy['id']}/enabled",
        f"/guardrails/policies/{policy['id']}/delete",
        f"/guardrails/holds/{hold['hold_id']}/approve",
        f"/guardrails/holds/{hold['hold_id']}/deny",
    ):
        r = client.post(path, data={"csrf_token": token, "golden": "true"}, headers={"origin": site.url})
        assert r.status_code == 404 and "text/html" in r.headers["content-type"], path
    r = client.get(f"/traces/{trace['id']}/regression")
    assert r.status_code == 404 and "handle_ticket" not in r.text
    assert other.client.get(f"/api/v1/traces/{trace['id']}").json()["golden"] is False
    assert other.client.get(f"/api/v1/enforcement/holds/{hold['hold_id']}").json()["status"] == "pending"
    assert other.client.get(f"/api/v1/enforcement/policies/{policy['id']}").json()["enabled"] is True
    # Untrusted names come back escaped.
    client.post(
        "/guardrails/policies",
        data={
            "csrf_token": token,
            "name": "<script>x()</script>",
            "kind": "tool_deny",
            "tool_deny-tools": "rm",
        },
        headers={"origin": site.url},
    )
    page = client.get("/guardrails").text
    assert "<script>x()</script>" not in page and "&lt;script&gt;x()&lt;/script&gt;" in page


def test_tape_links_open_the_public_page(site: RunningServer, user: ApiUser) -> None:
    trace = user.client.post("/api/v1/traces", json=nested_run()).json()
    tape = user.client.post("/api/v1/tapes", json={"trace_id": trace["id"]}).json()
    assert tape["url"] == f"http://retrace.test/t/{tape['slug']}"
    page = httpx.get(f"{site.url}/t/{tape['slug']}", headers={"accept": "text/html"})
    assert page.status_code == 200 and 'property="og:title"' in page.text
    assert httpx.get(f"{site.url}/api/v1/tapes/{tape['slug']}").json()["slug"] == tape["slug"]
