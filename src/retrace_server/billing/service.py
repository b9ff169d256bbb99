"""Billing with Dodo Payments: checkout and portal sessions, and the tier kept by webhooks."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

import dodopayments
from dodopayments import omit
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from retrace_server.auth import recent_keys
from retrace_server.auth.models import User
from retrace_server.auth.users import get_user
from retrace_server.billing.dodo import dodo_client, require_settings
from retrace_server.billing.errors import (
    AlreadyPro,
    BillingUserNotFound,
    InvalidWebhookPayload,
    NoBillingCustomer,
    PaymentProviderFailed,
)
from retrace_server.billing.models import WebhookEvent
from retrace_server.billing.schemas import (
    CheckoutSession,
    PortalSession,
    SubscriptionData,
    WebhookEnvelope,
    WebhookOutcome,
    WebhookResult,
)
from retrace_server.billing.webhooks import verify_delivery
from retrace_server.config import Settings
from retrace_server.db.engine import Database
from retrace_server.errors import describe_validation_errors

log = logging.getLogger("retrace_server.billing")

PRO_EVENTS = frozenset({"subscription.active", "subscription.renewed", "subscription.plan_changed"})
FREE_EVENTS = frozenset(
    {"subscription.cancelled", "subscription.expired", "subscription.failed", "subscription.on_hold"}
)


def _return_url(settings: Settings) -> str:
    return f"{settings.public_url.rstrip('/')}/billing"


async def _billing_user(db: Database, user_id: str) -> User:
    async with db.read() as session:
        user = await get_user(session, user_id=user_id)
    if user is None:
        raise BillingUserNotFound()
    return user


def _provider_error(exc: dodopayments.APIError) -> PaymentProviderFailed:
    if isinstance(exc, dodopayments.APIStatusError):
        return PaymentProviderFailed(
            f"Dodo Payments refused the request (HTTP {exc.status_code}): {exc.message}"
        )
    return PaymentProviderFailed("Could not reach Dodo Payments; try again shortly")


async def create_checkout(db: Database, settings: Settings, *, user_id: str) -> CheckoutSession:
    require_settings(settings, "dodo_api_key", "dodo_pro_product_id")
    user = await _billing_user(db, user_id)
    if user.tier == "pro":
        raise AlreadyPro()
    assert settings.dodo_pro_product_id is not None
    try:
        async with dodo_client(settings) as client:
            session = await client.checkout_sessions.create(
                product_cart=[{"product_id": settings.dodo_pro_product_id, "quantity": 1}],
                metadata={"user_id": user_id},
                return_url=_return_url(settings),
                customer={"customer_id": user.billing_customer_id} if user.billing_customer_id else omit,
            )
    except dodopayments.APIError as exc:
        raise _provider_error(exc) from None
    if not session.checkout_url:
        raise PaymentProviderFailed("Dodo Payments answered without a checkout URL")
    return CheckoutSession(checkout_url=session.checkout_url, session_id=session.session_id)


async def create_portal_session(db: Database, settings: Settings, *, user_id: str) -> PortalSession:
    require_settings(settings, "dodo_api_key")
    user = await _billing_user(db, user_id)
    if not user.billing_customer_id:
        raise NoBillingCustomer()
    try:
        async with dodo_client(settings) as client:
            portal = await client.customers.customer_portal.create(
                user.billing_customer_id, return_url=_return_url(settings)
            )
    except dodopayments.APIError as exc:
        raise _provider_error(exc) from None
    return PortalSession(url=portal.link)


async def create_webhook_event(
    db: Database, settings: Settings, *, body: bytes, headers: Mapping[str, str]
) -> WebhookResult:
    """Applies one signed delivery at most once; older events never overwrite newer state."""
    delivery = verify_delivery(settings, body=body, headers=headers)
    try:
        envelope = WebhookEnvelope.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidWebhookPayload(
            f"Invalid webhook payload: {describe_validation_errors(exc.errors())}"
        ) from None
    event_at = envelope.timestamp or delivery.sent_at
    try:
        async with db.write() as session:
            if await session.get(WebhookEvent, delivery.webhook_id) is not None:
                return WebhookResult(outcome="duplicate")
            session.add(WebhookEvent(id=delivery.webhook_id, event_type=envelope.type[:128]))
            await session.flush()
            outcome = await _apply_event(session, envelope, event_at=event_at)
    except IntegrityError:
        # The same delivery, processed concurrently by another request or process.
        return WebhookResult(outcome="duplicate")
    log.info("billing webhook %s (%s): %s", delivery.webhook_id, envelope.type, outcome)
    return WebhookResult(outcome=outcome)


async def _apply_event(
    session: AsyncSession, envelope: WebhookEnvelope, *, event_at: datetime
) -> WebhookOutcome:
    if envelope.type in PRO_EVENTS:
        tier = "pro"
    elif envelope.type in FREE_EVENTS:
        tier = "free"
    else:
        log.info("billing webhook of type %r ignored", envelope.type)
        return "ignored"
    try:
        subscription = SubscriptionData.model_validate(envelope.data)
    except ValidationError as exc:
        raise InvalidWebhookPayload(
            f"Invalid webhook payload: {describe_validation_errors(exc.errors())}"
        ) from None
    user = await _subscriber(session, subscription)
    if user is None:
        log.warning(
            "billing webhook %s names no known user (subscription %s)",
            envelope.type,
            subscription.subscription_id,
        )
        return "ignored"
    if user.billing_event_at is not None and event_at < user.billing_event_at:
        return "stale"
    replaced = (
        user.billing_subscription_id is not None
        and subscription.subscription_id is not None
        and subscription.subscription_id != user.billing_subscription_id
    )
    if tier == "free" and replaced:
        # The end of a subscription the user no longer relies on.
        return "stale"
    user.tier = tier
    recent_keys.forget_user(user.id)
    user.billing_event_at = event_at
    if subscription.customer and subscription.customer.customer_id:
        user.billing_customer_id = subscription.customer.customer_id
    if tier == "pro" and subscription.subscription_id:
        user.billing_subscription_id = subscription.subscription_id
    return "applied"


async def _subscriber(session: AsyncSession, subscription: SubscriptionData) -> User | None:
    """The user an event is about: from checkout metadata, else from the stored Dodo ids."""
    conditions = []
    user_id = subscription.metadata.get("user_id")
    if isinstance(user_id, str) and user_id:
        # Our own checkout put it there: it alone decides.
        conditions.append(User.id == user_id)
    elif subscription.subscription_id:
        conditions.append(User.billing_subscription_id == subscription.subscription_id)
    elif subscription.customer and subscription.customer.customer_id:
        conditions.append(User.billing_customer_id == subscription.customer.customer_id)
    for condition in conditions:
        # Row lock: concurrent events of one user are applied one after the other.
        user = (await session.execute(select(User).where(condition).with_for_update())).scalars().first()
        if user is not None:
            return user
    return None
