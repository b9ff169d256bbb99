"""Signs webhook deliveries the way Dodo Payments does (Standard Webhooks), with the test's secret."""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from standardwebhooks import Webhook


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def subscription_event(
    event_type: str,
    *,
    user_id: str | None,
    at: datetime,
    subscription_id: str | None = None,
    customer_id: str | None = None,
) -> dict[str, Any]:
    subscription_id = subscription_id or f"sub_{uuid.uuid4().hex[:12]}"
    customer_id = customer_id or f"cus_{uuid.uuid4().hex[:12]}"
    return {
        "business_id": "bus_test",
        "type": event_type,
        "timestamp": at.isoformat().replace("+00:00", "Z"),
        "data": {
            "payload_type": "Subscription",
            "subscription_id": subscription_id,
            "product_id": "prod_pro",
            "status": event_type.split(".", 1)[1],
            "customer": {"customer_id": customer_id, "email": "a@example.com", "name": "A"},
            "metadata": {"user_id": user_id} if user_id else {},
        },
    }


def signed(
    secret: str, payload: dict[str, Any], *, webhook_id: str | None = None, sent_at: datetime | None = None
) -> tuple[bytes, dict[str, str]]:
    """The raw body and the `webhook-*` headers of one delivery."""
    body = json.dumps(payload)
    msg_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    when = sent_at or datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id, when, body)
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signature,
    }
    return body.encode(), headers


def minutes_ago(minutes: float) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=minutes)
