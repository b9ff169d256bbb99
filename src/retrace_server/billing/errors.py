"""Refusals of the billing domain."""

from __future__ import annotations

from retrace_server.errors import Conflict, DomainError, InvalidInput, NotFound, ServiceUnavailable


class BillingNotConfigured(ServiceUnavailable):
    """A setting the route needs is missing (or unusable): the message names it."""


class AlreadyPro(Conflict):
    def __init__(self) -> None:
        super().__init__("Already on the Pro plan: manage the subscription with POST /api/v1/billing/portal")


class NoBillingCustomer(NotFound):
    def __init__(self) -> None:
        super().__init__(
            "Billing customer",
            message="No billing customer for this user yet: "
            "subscribe first with POST /api/v1/billing/checkout",
        )


class BillingUserNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("User")


class PaymentProviderFailed(DomainError):
    """Dodo Payments refused the request, could not be reached, or answered nonsense."""

    status = 502


class InvalidWebhookSignature(DomainError):
    status = 401


class InvalidWebhookPayload(InvalidInput):
    pass
