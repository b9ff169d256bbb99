from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from retrace_server.auth.dependencies import UserDep
from retrace_server.billing import service
from retrace_server.billing.schemas import CheckoutSession, PortalSession, WebhookResult
from retrace_server.deps import DbDep, SettingsDep
from retrace_server.jsonutil import JsonResponse
from retrace_server.ratelimit import ip_rate_limit

router = APIRouter(prefix="/api/v1/billing", tags=["billing"])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid credentials"},
    429: {"description": "Rate limit exceeded"},
    502: {"description": "Dodo Payments refused the request or could not be reached"},
    503: {"description": "Billing is not configured on this server (the error names the setting)"},
}


@router.post(
    "/checkout",
    summary="Create a Dodo Payments checkout session for the Pro plan",
    response_model=CheckoutSession,
    responses={**ERRORS, 409: {"description": "The user is already on the Pro plan"}},
)
async def create_checkout(user: UserDep, db: DbDep, settings: SettingsDep) -> JsonResponse:
    checkout = await service.create_checkout(db, settings, user_id=user.id)
    return JsonResponse(checkout.model_dump())


@router.post(
    "/portal",
    summary="Open the Dodo Payments customer portal",
    response_model=PortalSession,
    responses={**ERRORS, 404: {"description": "The user has no billing customer yet"}},
)
async def create_portal(user: UserDep, db: DbDep, settings: SettingsDep) -> JsonResponse:
    portal = await service.create_portal_session(db, settings, user_id=user.id)
    return JsonResponse(portal.model_dump())


@router.post(
    "/webhook",
    summary="Dodo Payments webhook receiver (no auth; Standard Webhooks signature)",
    response_model=WebhookResult,
    dependencies=[Depends(ip_rate_limit)],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "description": "A Dodo Payments event: business_id, type, timestamp, data",
                    }
                }
            },
        }
    },
    responses={
        400: {"description": "Signed, but not a Dodo Payments event"},
        401: {"description": "Missing, invalid or stale signature"},
        429: {"description": "Rate limit exceeded"},
        503: {"description": "RETRACE_DODO_WEBHOOK_SECRET is not set"},
    },
)
async def receive_webhook(request: Request, db: DbDep, settings: SettingsDep) -> JsonResponse:
    body = await request.body()
    result = await service.create_webhook_event(db, settings, body=body, headers=request.headers)
    return JsonResponse(result.model_dump())
