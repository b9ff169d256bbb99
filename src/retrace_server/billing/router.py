from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from retrace_server.auth.dependencies import UserDep
from retrace_server.billing import service
from retrace_server.billing.schemas import CheckoutSession, PortalSession, WebhookResult
from retrace_server.deps import DbDep, SettingsDep
from retrace_server.jsonutil import JsonResponse
from retrace_server.openapi import error_responses
from retrace_server.ratelimit import ip_rate_limit

router = APIRouter(prefix="/api/v1/billing", tags=["billing"])

PROVIDER_ERRORS = error_responses(
    502,
    503,
    e502="Dodo Payments refused the request or could not be reached",
    e503="Billing is not configured on this server (the error names the setting)",
)


@router.post(
    "/checkout",
    summary="Create a Dodo Payments checkout session for the Pro plan",
    response_model=CheckoutSession,
    responses={
        **error_responses(409, e409="The user is already on the Pro plan"),
        **PROVIDER_ERRORS,
    },
)
async def create_checkout(user: UserDep, db: DbDep, settings: SettingsDep) -> JsonResponse:
    checkout = await service.create_checkout(db, settings, user_id=user.id)
    return JsonResponse(checkout.model_dump())


@router.post(
    "/portal",
    summary="Open the Dodo Payments customer portal",
    response_model=PortalSession,
    responses={
        **error_responses(404, e404="The user has no billing customer yet"),
        **PROVIDER_ERRORS,
    },
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
    responses=error_responses(
        400,
        401,
        413,
        415,
        429,
        503,
        e400="Signed, but not a Dodo Payments event",
        e401="Missing, invalid or stale signature",
        e503="RETRACE_DODO_WEBHOOK_SECRET is not set (or not a valid secret)",
    ),
)
async def receive_webhook(request: Request, db: DbDep, settings: SettingsDep) -> JsonResponse:
    body = await request.body()
    result = await service.create_webhook_event(db, settings, body=body, headers=request.headers)
    return JsonResponse(result.model_dump())
