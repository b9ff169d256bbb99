from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class CheckoutSession(BaseModel):
    checkout_url: str
    session_id: str


class PortalSession(BaseModel):
    url: str


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


class WebhookResult(BaseModel):
    received: bool = True
    outcome: str = Field(description="applied | duplicate | stale | ignored")
