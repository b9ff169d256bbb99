from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from retrace_server.schemas import Answer


class CheckoutSession(Answer):
    checkout_url: str = Field(description="Where to send the user to pay")
    session_id: str


class PortalSession(Answer):
    url: str = Field(description="The customer portal, where the user manages the subscription")


class WebhookCustomer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    customer_id: str | None = None


class SubscriptionData(BaseModel):
    """The fields of a Dodo subscription event that decide a user's tier."""

    model_config = ConfigDict(extra="ignore")

    subscription_id: str | None = None
    product_id: str | None = None
    status: str | None = None
    customer: WebhookCustomer | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class WebhookEnvelope(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: str
    timestamp: datetime | None = None
    data: dict[str, Any] = Field(default_factory=dict)


WebhookOutcome = Literal["applied", "duplicate", "stale", "ignored"]


class WebhookResult(Answer):
    received: bool = True
    outcome: WebhookOutcome = Field(
        description="applied; duplicate (this webhook-id was applied before); stale (older than the "
        "state it would change); ignored (an event type or user this server does not act on)"
    )
