from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from retrace_server.config import Settings
from retrace_server.ratelimit.policy import request_kind
from tests.billing.signing import new_secret, signed, subscription_event
from tests.support.jwt_keys import JwtSigner
from tests.support.server import ApiUser, RunningServer, create_user, free_port, running_server

LIMITS = {
    "rate_limit_enabled": True,
    "rate_limit_free_write": 3,
    "rate_limit_free_read": 5,
    "rate_limit_pro_write": 6,
    "rate_limit_pro_read": 10,
    "rate_limit_ip": 4,
    "rate_limit_auth_failures": 3,
}
WEBHOOK_SECRET = new_secret()


@pytest.fixture(scope="module")
def limited(make_settings: Callable[..., Settings]) -> Iterator[RunningServer]:
    with running_server(make_settings(**LIMITS, dodo_webhook_secret=WEBHOOK_SECRET)) as server:
        yield server


def _trace(**extra: Any) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "name": "limited", "started_at": "2026-11-28T10:00:00Z", **extra}


def _assert_429(r: httpx.Response, *, kind: str) -> None:
    assert r.status_code == 429, r.text
    retry_after = int(r.headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert r.headers["x-ratelimit-remaining"] == "0"
    message = r.json()["error"]
    assert kind in message
    assert f"Retry in {retry_after} second" in message


def test_write_limit_answers_429_with_retry_after(limited: RunningServer) -> None:
    user = create_user(limited)
    remaining = []
    for _ in range(3):
        r = user.client.post("/api/v1/traces", json=_trace())
        assert r.status_code == 201, r.text
        assert r.headers["x-ratelimit-limit"] == "3"
        assert int(r.headers["x-ratelimit-reset"]) > datetime.now(UTC).timestamp()
        remaining.append(r.headers["x-ratelimit-remaining"])
    assert remaining == ["2", "1", "0"]
    _assert_429(user.client.post("/api/v1/traces", json=_trace()), kind="write")
    # Reads have their own budget.
    r = user.client.get("/api/v1/traces")
    assert r.status_code == 200
    assert r.headers["x-ratelimit-limit"] == "5"


def test_read_limit_answers_429_with_retry_after(limited: RunningServer) -> None:
    user = create_user(limited)
    for _ in range(5):
        assert user.client.get("/api/v1/traces").status_code == 200
    _assert_429(user.client.get("/api/v1/traces"), kind="read")
    assert user.client.get("/api/v1/api-keys").status_code == 429
    assert user.client.post("/api/v1/traces", json=_trace()).status_code == 201


def test_a_batch_counts_once_however_many_spans(limited: RunningServer) -> None:
    user = create_user(limited)
    spans = [
        {"id": f"s{i}", "span_type": "tool_call", "name": f"step {i}", "started_at": "2026-11-28T10:00:01Z"}
        for i in range(200)
    ]
    r = user.client.post("/api/v1/traces", json=_trace(spans=spans))
    assert r.status_code == 201, r.text
    assert r.json()["span_count"] == 200
    assert r.headers["x-ratelimit-remaining"] == "2"


def test_users_are_limited_separately(limited: RunningServer) -> None:
    first, second = create_user(limited), create_user(limited)
    for _ in range(3):
        first.client.post("/api/v1/traces", json=_trace())
    assert first.client.post("/api/v1/traces", json=_trace()).status_code == 429
    r = second.client.post("/api/v1/traces", json=_trace())
    assert r.status_code == 201
    assert r.headers["x-ratelimit-remaining"] == "2"


def test_jwt_callers_are_limited_too(limited: RunningServer, jwt_signer: JwtSigner) -> None:
    headers = {"authorization": f"Bearer {jwt_signer.token(f'web-{uuid.uuid4().hex[:8]}')}"}
    with httpx.Client(base_url=limited.url, headers=headers) as web:
        codes = [web.get("/api/v1/api-keys").status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]


def test_signed_webhook_upgrade_raises_the_enforced_limits(limited: RunningServer) -> None:
    user = create_user(limited)
    for _ in range(3):
        assert user.client.post("/api/v1/traces", json=_trace()).status_code == 201
    assert user.client.post("/api/v1/traces", json=_trace()).status_code == 429

    event = subscription_event("subscription.active", user_id=user.id, at=datetime.now(UTC))
    body, headers = signed(WEBHOOK_SECRET, event)
    with httpx.Client(base_url=limited.url) as dodo:
        assert (
            dodo.post("/api/v1/billing/webhook", content=body, headers=headers).json()["outcome"] == "applied"
        )

    # The same counter, now against the Pro limit: 3 used of 6.
    statuses = []
    for _ in range(4):
        r = user.client.post("/api/v1/traces", json=_trace())
        statuses.append(r.status_code)
        assert r.headers["x-ratelimit-limit"] == "6"
    assert statuses == [201, 201, 201, 429]


def test_failed_authentication_is_limited_per_ip(make_settings: Callable[..., Settings]) -> None:
    with running_server(make_settings(**LIMITS)) as server:
        user = create_user(server)
        with httpx.Client(base_url=server.url) as guesser:
            guesses = [
                guesser.get("/api/v1/traces", headers={"x-retrace-key": f"rt_live_guess{i}"})
                for i in range(4)
            ]
            assert [g.status_code for g in guesses] == [401, 401, 401, 429]
            assert int(guesses[-1].headers["retry-after"]) >= 1
            assert guesses[-1].headers["x-ratelimit-limit"] == "3"
            assert "failed authentication" in guesses[-1].json()["error"]
            bad_jwt = guesser.get("/api/v1/traces", headers={"authorization": "Bearer not.a.jwt"})
            assert bad_jwt.status_code == 429
        # The right key from the same address is not refused for the guesses' failures.
        allowed = user.client.get("/api/v1/traces")
        assert allowed.status_code == 200, allowed.text
        assert allowed.headers["x-ratelimit-limit"] == "5"


def test_wrong_keys_from_an_address_never_lock_out_its_valid_keys(
    make_settings: Callable[..., Settings], jwt_signer: JwtSigner
) -> None:
    """An agent left running with a revoked key must not stop everyone behind the same address."""
    # The shipped budget of failed authentications (20 a minute), with user limits high enough
    # not to interfere.
    settings = make_settings(rate_limit_enabled=True, rate_limit_free_read=1000, rate_limit_free_write=1000)
    assert settings.rate_limit_auth_failures == 20
    with running_server(settings) as server:
        office = create_user(server)
        stale_key = create_user(server).key
        with httpx.Client(base_url=server.url) as rotated:
            rotated.delete("/api/v1/api-keys", headers={"x-retrace-key": stale_key})
            failures = [
                rotated.post(
                    "/api/v1/traces", json=_trace(), headers={"x-retrace-key": stale_key}
                ).status_code
                for _ in range(22)
            ]
        assert failures == [401] * 20 + [429] * 2
        # Other requests from the address, with valid credentials, go on.
        stored = office.client.post("/api/v1/traces", json=_trace())
        assert stored.status_code == 201, stored.text
        assert office.client.get(f"/api/v1/traces/{stored.json()['id']}").status_code == 200
        web = {"authorization": f"Bearer {jwt_signer.token(f'web-{uuid.uuid4().hex[:8]}')}"}
        assert httpx.get(f"{server.url}/api/v1/api-keys", headers=web).status_code == 200
        # Guessing from the address is still refused, valid key or not in between.
        with httpx.Client(base_url=server.url) as guesser:
            guess = guesser.get("/api/v1/traces", headers={"x-retrace-key": "rt_guess"})
        assert guess.status_code == 429
        assert int(guess.headers["retry-after"]) >= 1


def test_unauthenticated_webhook_is_limited_per_ip(make_settings: Callable[..., Settings]) -> None:
    with running_server(make_settings(**LIMITS, dodo_webhook_secret=WEBHOOK_SECRET)) as server:
        with httpx.Client(base_url=server.url) as anonymous:
            answers = [anonymous.post("/api/v1/billing/webhook", json={"type": "x"}) for _ in range(5)]
        assert [a.status_code for a in answers] == [401, 401, 401, 401, 429]
        assert answers[0].headers["x-ratelimit-limit"] == "4"
        assert int(answers[-1].headers["retry-after"]) >= 1
        assert "unauthenticated" in answers[-1].json()["error"]


def test_limiting_off_sends_no_headers(server: RunningServer, alice: ApiUser) -> None:
    assert server.settings.rate_limit_enabled is False
    for _ in range(10):
        r = alice.client.post("/api/v1/traces", json=_trace())
        assert r.status_code == 201
        assert "x-ratelimit-limit" not in r.headers


def test_redis_outage_fails_open_and_warns_once(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    with running_server(make_settings(**LIMITS, redis_url=dead_redis)) as server:
        user = create_user(server)
        with caplog.at_level(logging.WARNING, logger="retrace_server.ratelimit"):
            answers = [user.client.post("/api/v1/traces", json=_trace()) for _ in range(6)]
    assert [a.status_code for a in answers] == [201] * 6
    assert all("x-ratelimit-limit" not in a.headers for a in answers)
    warnings = [r for r in caplog.records if r.name == "retrace_server.ratelimit"]
    assert len(warnings) == 1
    assert "Redis is unavailable" in warnings[0].getMessage()


@pytest.mark.parametrize(
    ("method", "path", "kind"),
    [
        ("GET", "/api/v1/traces", "read"),
        ("POST", "/api/v1/search", "read"),
        ("POST", "/api/v1/memory/search", "read"),
        ("POST", "/api/v1/memory", "write"),
        ("PATCH", "/api/v1/traces/t1", "write"),
        ("DELETE", "/api/v1/api-keys", "write"),
    ],
)
def test_reads_are_gets_and_the_two_searches(method: str, path: str, kind: str) -> None:
    assert request_kind(method, path) == kind
