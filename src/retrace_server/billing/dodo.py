"""The Dodo Payments SDK client, made from the settings, and the checks that billing is set up."""

from __future__ import annotations

from dodopayments import AsyncDodoPayments
from dodopayments._client import ENVIRONMENTS

from retrace_server.billing.errors import BillingNotConfigured
from retrace_server.config import Settings

REQUEST_TIMEOUT_S = 15.0


def require_settings(settings: Settings, *fields: str) -> None:
    """Refuses (503) naming the first missing `RETRACE_DODO_*` setting a billing route needs."""
    for field in fields:
        if not getattr(settings, field):
            raise BillingNotConfigured(
                f"Billing is not configured on this server: set RETRACE_{field.upper()}"
            )


def dodo_client(settings: Settings) -> AsyncDodoPayments:
    require_settings(settings, "dodo_api_key")
    return AsyncDodoPayments(
        bearer_token=settings.dodo_api_key,
        environment=settings.dodo_environment,
        base_url=settings.dodo_base_url or ENVIRONMENTS[settings.dodo_environment],
        timeout=REQUEST_TIMEOUT_S,
        max_retries=2,
    )
