"""One error envelope for every failure: `{"error": "human-readable message"}`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from retrace_server.jsonutil import JsonResponse

_STATUS_MESSAGES = {
    400: "Bad request",
    402: "Payment required",
    401: "Authentication required: send `x-retrace-key: rt_...` or `Authorization: Bearer <jwt>`",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request body too large",
    415: "Unsupported media type: send `Content-Type: application/json`",
    429: "Rate limit exceeded",
    500: "Internal server error",
    503: "Service unavailable",
}


class ApiError(Exception):
    """Raised anywhere in request handling; rendered as the error envelope."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} not found")


class DomainError(Exception):
    """A service's refusal, in the service's own words; rendered once, as the error envelope.

    Services raise these (or a domain's subclass, such as `TraceNotFound`) and never speak HTTP:
    `status` is the only place a refusal meets its HTTP answer.
    """

    status = 400

    def __init__(self, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = dict(headers or {})


class InvalidInput(DomainError):
    status = 400


class NotFound(DomainError):
    """Another user's resource is not found either: existence never leaks across users."""

    status = 404

    def __init__(self, what: str, *, message: str | None = None) -> None:
        super().__init__(message or f"{what} not found")


class Conflict(DomainError):
    status = 409


class PaymentRequired(DomainError):
    status = 402


class ServiceUnavailable(DomainError):
    """A fault that passes (the database restarting): the client should retry after `Retry-After`."""

    status = 503


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> JsonResponse:
    return JsonResponse({"error": message}, status_code=status, headers=dict(headers or {}))


def describe_validation_errors(errors: Sequence[Any], *, skip_prefix: tuple[str, ...] = ("body",)) -> str:
    """Names the field of the first problems: `spans[3].started_at: Input should be a valid datetime`."""
    parts = []
    for err in list(errors)[:3]:
        loc = [p for p in err.get("loc", ()) if p not in skip_prefix]
        parts.append(f"{format_location(loc) or 'body'}: {err.get('msg', 'invalid value')}")
    more = len(errors) - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def format_location(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JsonResponse:
        return error_response(exc.status, exc.message, exc.headers)

    @app.exception_handler(DomainError)
    async def _domain_error(_request: Request, exc: DomainError) -> JsonResponse:
        return error_response(exc.status, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JsonResponse:
        message = exc.detail if isinstance(exc.detail, str) and exc.detail else None
        if exc.status_code == 404 and message == "Not Found":
            message = None
        if exc.status_code == 405 and message == "Method Not Allowed":
            message = None
        return error_response(
            exc.status_code,
            message or _STATUS_MESSAGES.get(exc.status_code, "Error"),
            getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JsonResponse:
        return error_response(
            400, describe_validation_errors(exc.errors(), skip_prefix=("body", "query", "path"))
        )

    @app.exception_handler(ValidationError)
    async def _pydantic_error(_request: Request, exc: ValidationError) -> JsonResponse:
        return error_response(400, describe_validation_errors(exc.errors()))
