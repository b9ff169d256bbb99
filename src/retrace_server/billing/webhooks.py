"""Standard Webhooks signatures (`webhook-id`, `webhook-timestamp`, `webhook-signature`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from retrace_server.billing.dodo import require_settings
from retrace_server.billing.errors import BillingNotConfigured, InvalidWebhookSignature
from retrace_server.config import Settings

_SIGNED_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


@dataclass(frozen=True)
class VerifiedDelivery:
    webhook_id: str
    sent_at: datetime


def verify_delivery(settings: Settings, *, body: bytes, headers: Mapping[str, str]) -> VerifiedDelivery:
    """Checks the signature over the raw body and the 5-minute timestamp tolerance."""
    require_settings(settings, "dodo_webhook_secret")
    assert settings.dodo_webhook_secret is not None
    try:
        webhook = Webhook(settings.dodo_webhook_secret)
    except Exception:
        raise BillingNotConfigured("RETRACE_DODO_WEBHOOK_SECRET is not a valid `whsec_...` secret") from None
    signed = {name: headers[name] for name in _SIGNED_HEADERS if name in headers}
    try:
        webhook.verify(body, signed, json_parse=False)
    except WebhookVerificationError as exc:
        raise InvalidWebhookSignature(f"Invalid webhook signature: {exc}") from None
    except (ValueError, TypeError):
        raise InvalidWebhookSignature("Invalid webhook signature: malformed signature headers") from None
    sent_at = datetime.fromtimestamp(float(signed["webhook-timestamp"]), tz=UTC)
    return VerifiedDelivery(webhook_id=signed["webhook-id"], sent_at=sent_at)
