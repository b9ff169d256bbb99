from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from retrace_server.auth.users import get_user
from retrace_server.config import Settings
from retrace_server.db.engine import Database
from tests.billing.signing import minutes_ago, new_secret, signed, subscription_event
from tests.fakes.dodo_server import FakeDodoServer
from tests.support.server import ApiUser, RunningServer, create_user, running_server

DODO_KEY = "dodo_test_key_123"
PRO_PRODUCT = "pdt_retrace_pro"
SECRET = new_secret()


@pytest.fixture(scope="module")
def dodo() -> Iterator[FakeDodoServer]:
    fake = FakeDodoServer(api_key=DODO_KEY).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def billing(make_settings: Callable[..., Settings], dodo: FakeDodoServer) -> Iterator[RunningServer]:
    settings = make_settings(
        dodo_api_key=DODO_KEY,
        dodo_base_url=dodo.url,
        dodo_webhook_secret=SECRET,
        dodo_pro_product_id=PRO_PRODUCT,
    )
    with running_server(settings) as server:
        yield server


@pytest.fixture
def customer(billing: RunningServer) -> ApiUser:
    return create_user(billing)


def _billing_state(server: RunningServer, user_id: str) -> dict[str, Any]:
    async def _load() -> dict[str, Any]:
        db = Database(server.settings)
        try:
            async with db.read() as session:
                user = await get_user(session, user_id=user_id)
                assert user is not None
                return {
                    "tier": user.tier,
                    "customer": user.billing_customer_id,
                    "subscription": user.billing_subscription_id,
                }
        finally:
            await db.dispose()

    return asyncio.run(_load())


def _deliver(server: RunningServer, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{server.url}/api/v1/billing/webhook", content=body, headers=headers)


def _send_event(server: RunningServer, event_type: str, user_id: str | None, **kwargs: Any) -> httpx.Response:
    at = kwargs.pop("at", datetime.now(UTC))
    body, headers = signed(SECRET, subscription_event(event_type, user_id=user_id, at=at, **kwargs))
    return _deliver(server, body, headers)


def test_checkout_creates_a_pro_session_for_the_user(
    billing: RunningServer, dodo: FakeDodoServer, customer: ApiUser
) -> None:
    r = customer.client.post("/api/v1/billing/checkout")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["session_id"].startswith("cks_")
    assert body["checkout_url"] == f"https://checkout.dodo.test/session/{body['session_id']}"
    sent = dodo.requests[-1]
    assert sent["path"] == "/checkouts"
    assert sent["headers"]["authorization"] == f"Bearer {DODO_KEY}"
    assert sent["body"]["product_cart"] == [{"product_id": PRO_PRODUCT, "quantity": 1}]
    assert sent["body"]["metadata"] == {"user_id": customer.id}
    assert sent["body"]["return_url"] == "http://retrace.test/billing"
    assert "customer" not in sent["body"]


def test_active_subscription_makes_the_user_pro(billing: RunningServer, customer: ApiUser) -> None:
    r = _send_event(billing, "subscription.active", customer.id, subscription_id="sub_a", customer_id="cus_a")
    assert r.status_code == 200, r.text
    assert r.json() == {"received": True, "outcome": "applied"}
    assert _billing_state(billing, customer.id) == {
        "tier": "pro",
        "customer": "cus_a",
        "subscription": "sub_a",
    }
    again = customer.client.post("/api/v1/billing/checkout")
    assert again.status_code == 409
    assert "portal" in again.json()["error"]


@pytest.mark.parametrize("ending", ["cancelled", "expired", "failed", "on_hold"])
def test_ending_events_return_the_user_to_free(
    billing: RunningServer, customer: ApiUser, ending: str
) -> None:
    start = datetime.now(UTC) - timedelta(minutes=1)
    renewed = _send_event(
        billing, "subscription.renewed", customer.id, at=start, subscription_id=f"sub_{ending}"
    )
    assert renewed.json()["outcome"] == "applied"
    assert _billing_state(billing, customer.id)["tier"] == "pro"
    r = _send_event(
        billing, f"subscription.{ending}", customer.id, subscription_id=f"sub_{ending}", customer_id="cus_1"
    )
    assert r.json()["outcome"] == "applied"
    state = _billing_state(billing, customer.id)
    assert state["tier"] == "free"
    assert state["customer"] == "cus_1"


def test_plan_change_makes_the_user_pro(billing: RunningServer, customer: ApiUser) -> None:
    assert _send_event(billing, "subscription.plan_changed", customer.id).json()["outcome"] == "applied"
    assert _billing_state(billing, customer.id)["tier"] == "pro"


def test_events_without_metadata_find_the_user_by_subscription(
    billing: RunningServer, customer: ApiUser
) -> None:
    earlier = datetime.now(UTC) - timedelta(minutes=1)
    _send_event(billing, "subscription.active", customer.id, subscription_id="sub_meta", at=earlier)
    r = _send_event(
        billing, "subscription.cancelled", None, subscription_id="sub_meta", customer_id="cus_other"
    )
    assert r.json()["outcome"] == "applied"
    assert _billing_state(billing, customer.id)["tier"] == "free"


def test_retried_delivery_is_processed_once(billing: RunningServer, customer: ApiUser) -> None:
    active = subscription_event("subscription.active", user_id=customer.id, at=minutes_ago(1))
    subscription_id = active["data"]["subscription_id"]
    body, headers = signed(SECRET, active)
    assert _deliver(billing, body, headers).json()["outcome"] == "applied"
    assert _deliver(billing, body, headers).json() == {"received": True, "outcome": "duplicate"}

    # Another payload under an id already processed changes nothing either.
    cancel = subscription_event("subscription.cancelled", user_id=customer.id, at=datetime.now(UTC))
    cancel["data"]["subscription_id"] = subscription_id
    body2, headers2 = signed(SECRET, cancel, webhook_id=headers["webhook-id"])
    r = _deliver(billing, body2, headers2)
    assert r.status_code == 200
    assert r.json()["outcome"] == "duplicate"
    assert _billing_state(billing, customer.id)["tier"] == "pro"


def test_older_event_never_overwrites_newer_state(billing: RunningServer, customer: ApiUser) -> None:
    now = datetime.now(UTC)
    cancelled = _send_event(
        billing, "subscription.cancelled", customer.id, at=now, subscription_id="sub_late"
    )
    assert cancelled.json()["outcome"] == "applied"
    late = _send_event(
        billing, "subscription.active", customer.id, at=now - timedelta(minutes=2), subscription_id="sub_late"
    )
    assert late.status_code == 200
    assert late.json()["outcome"] == "stale"
    assert _billing_state(billing, customer.id)["tier"] == "free"


def test_end_of_a_replaced_subscription_keeps_pro(billing: RunningServer, customer: ApiUser) -> None:
    now = datetime.now(UTC)
    _send_event(
        billing, "subscription.active", customer.id, subscription_id="sub_new", at=now - timedelta(seconds=30)
    )
    r = _send_event(billing, "subscription.expired", customer.id, subscription_id="sub_old", at=now)
    assert r.json()["outcome"] == "stale"
    assert _billing_state(billing, customer.id)["tier"] == "pro"


def test_unknown_event_type_is_acknowledged_and_ignored(billing: RunningServer, customer: ApiUser) -> None:
    payload = {
        "business_id": "bus_test",
        "type": "payment.succeeded",
        "timestamp": "2026-11-28T10:00:00Z",
        "data": {},
    }
    body, headers = signed(SECRET, payload)
    r = _deliver(billing, body, headers)
    assert r.status_code == 200
    assert r.json()["outcome"] == "ignored"


def test_event_for_unknown_user_is_ignored(billing: RunningServer) -> None:
    r = _send_event(billing, "subscription.active", "nobody-" + uuid.uuid4().hex, subscription_id="sub_x")
    assert r.status_code == 200
    assert r.json()["outcome"] == "ignored"


def test_forged_or_stale_signatures_are_refused(billing: RunningServer, customer: ApiUser) -> None:
    event = subscription_event("subscription.active", user_id=customer.id, at=datetime.now(UTC))
    forged_body, forged_headers = signed(new_secret(), event)
    stale_body, stale_headers = signed(SECRET, event, sent_at=minutes_ago(6))
    good_body, good_headers = signed(SECRET, event)
    tampered = good_body.replace(b"subscription.active", b"subscription.renewed")
    attempts = [
        (forged_body, forged_headers),
        (stale_body, stale_headers),
        (tampered, good_headers),
        (good_body, {"content-type": "application/json"}),
        (good_body, {**good_headers, "webhook-signature": "v1"}),
    ]
    for body, headers in attempts:
        r = _deliver(billing, body, headers)
        assert r.status_code == 401, r.text
        assert r.json()["error"].startswith("Invalid webhook signature")
    assert _billing_state(billing, customer.id)["tier"] == "free"
    # The genuine delivery still goes through: the refused ones were not recorded under its id.
    assert _deliver(billing, good_body, good_headers).json()["outcome"] == "applied"


def test_signed_but_malformed_payload_is_400(billing: RunningServer) -> None:
    body, headers = signed(SECRET, {"no": "type"})
    r = _deliver(billing, body, headers)
    assert r.status_code == 400
    assert "type" in r.json()["error"]


def test_portal_needs_a_billing_customer(
    billing: RunningServer, dodo: FakeDodoServer, customer: ApiUser
) -> None:
    r = customer.client.post("/api/v1/billing/portal")
    assert r.status_code == 404
    assert "checkout" in r.json()["error"]

    _send_event(billing, "subscription.active", customer.id, customer_id="cus_portal")
    r = customer.client.post("/api/v1/billing/portal")
    assert r.status_code == 200, r.text
    assert r.json() == {"url": "https://portal.dodo.test/cus_portal"}
    assert dodo.requests[-1]["path"] == "/customers/cus_portal/customer-portal/session"
    assert dodo.requests[-1]["query"]["return_url"] == "http://retrace.test/billing"


def test_checkout_reuses_the_known_customer(
    billing: RunningServer, dodo: FakeDodoServer, customer: ApiUser
) -> None:
    earlier = datetime.now(UTC) - timedelta(minutes=1)
    _send_event(
        billing, "subscription.active", customer.id, customer_id="cus_back", subscription_id="s_b", at=earlier
    )
    _send_event(billing, "subscription.expired", customer.id, customer_id="cus_back", subscription_id="s_b")
    assert customer.client.post("/api/v1/billing/checkout").status_code == 200
    assert dodo.requests[-1]["body"]["customer"] == {"customer_id": "cus_back"}


def test_billing_routes_require_authentication(billing: RunningServer) -> None:
    for path in ("/api/v1/billing/checkout", "/api/v1/billing/portal"):
        r = httpx.post(f"{billing.url}{path}")
        assert r.status_code == 401
        assert "Authentication required" in r.json()["error"]


def test_provider_refusal_is_502(make_settings: Callable[..., Settings], dodo: FakeDodoServer) -> None:
    settings = make_settings(
        dodo_api_key="wrong-key", dodo_base_url=dodo.url, dodo_pro_product_id=PRO_PRODUCT
    )
    with running_server(settings) as server:
        r = create_user(server).client.post("/api/v1/billing/checkout")
    assert r.status_code == 502
    assert "HTTP 401" in r.json()["error"]
    assert "wrong-key" not in r.text


def test_unconfigured_billing_answers_503_naming_the_setting(server: RunningServer, alice: ApiUser) -> None:
    checkout = alice.client.post("/api/v1/billing/checkout")
    assert checkout.status_code == 503
    assert "RETRACE_DODO_API_KEY" in checkout.json()["error"]
    portal = alice.client.post("/api/v1/billing/portal")
    assert portal.status_code == 503
    assert "RETRACE_DODO_API_KEY" in portal.json()["error"]
    webhook = httpx.post(
        f"{server.url}/api/v1/billing/webhook", json={"type": "subscription.active", "data": {}}
    )
    assert webhook.status_code == 503
    assert "RETRACE_DODO_WEBHOOK_SECRET" in webhook.json()["error"]


def test_missing_product_is_named(make_settings: Callable[..., Settings], dodo: FakeDodoServer) -> None:
    with running_server(make_settings(dodo_api_key=DODO_KEY, dodo_base_url=dodo.url)) as server:
        r = create_user(server).client.post("/api/v1/billing/checkout")
    assert r.status_code == 503
    assert "RETRACE_DODO_PRO_PRODUCT_ID" in r.json()["error"]
