"""OTLP/HTTP receivers: traces and GenAI log events, and the Langfuse SDK's endpoint for traces."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from retrace_server import __version__
from retrace_server.auth.dependencies import UserDep
from retrace_server.deps import SettingsDep
from retrace_server.errors import ApiError, DomainError
from retrace_server.ingest.dependencies import IngestDep
from retrace_server.openapi import error_responses
from retrace_server.otlp import decode, responses, service
from retrace_server.otlp.decode import Encoding
from retrace_server.otlp.errors import PayloadTooLarge

TRACES_PATH = "/v1/traces"
LOGS_PATH = "/v1/logs"
LANGFUSE_TRACES_PATH = "/api/public/otel/v1/traces"
OWN_BODY_PATHS = frozenset({TRACES_PATH, LOGS_PATH, LANGFUSE_TRACES_PATH})
"""Paths whose routes check the body's media type and size themselves (the middleware skips them)."""

# A gzip body may inflate this many times over the request size limit.
MAX_INFLATION = 8


def _request_encoding(request: Request) -> Encoding:
    try:
        return decode.encoding_of(request.headers.get("content-type"))
    except DomainError:
        return "json"


class OtlpRoute(APIRoute):
    """Failures answer a `google.rpc.Status` in the request's encoding, as OTLP/HTTP requires."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def otlp_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except (ApiError, DomainError) as exc:
                status = exc.status
                return responses.status_response(_request_encoding(request), status, exc.message, exc.headers)

        return otlp_handler


router = APIRouter(tags=["opentelemetry"], route_class=OtlpRoute)


class PartialSuccess(BaseModel):
    rejectedSpans: int = Field(0, description="Spans not stored (log records for /v1/logs)")
    errorMessage: str = Field("", description="Why, naming each refused span by position")


class ExportResponse(BaseModel):
    """`ExportTraceServiceResponse` (or `ExportLogsServiceResponse`), in the request's encoding."""

    partialSuccess: PartialSuccess | None = None


def _otlp_body(description: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {
                "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
                "application/json": {"schema": {"type": "object"}},
            },
        }
    }


OTLP_ERRORS = error_responses(400, 401, 413, 415, 429, 503)


async def _read_body(request: Request, *, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"Request body too large: the limit is {limit} bytes; export in smaller batches"
        )
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > limit:
            raise PayloadTooLarge(
                f"Request body too large: the limit is {limit} bytes; export in smaller batches"
            )
    return bytes(chunks)


async def _export_body(request: Request, max_body_bytes: int) -> tuple[bytes, Encoding]:
    encoding = decode.encoding_of(request.headers.get("content-type"))
    body = await _read_body(request, limit=max_body_bytes)
    raw = decode.decompress(
        body, request.headers.get("content-encoding"), limit=max_body_bytes * MAX_INFLATION
    )
    return raw, encoding


@router.post(
    TRACES_PATH,
    summary="Receive OTLP/HTTP traces (protobuf or JSON, gzip or none)",
    response_model=ExportResponse,
    responses=OTLP_ERRORS,
    openapi_extra=_otlp_body("ExportTraceServiceRequest"),
)
@router.post(
    LANGFUSE_TRACES_PATH,
    summary="Receive the Langfuse SDK's traces (OTLP/HTTP, Basic auth with a Retrace key as password)",
    response_model=ExportResponse,
    responses=OTLP_ERRORS,
    openapi_extra=_otlp_body("ExportTraceServiceRequest"),
)
async def export_traces(
    request: Request, user: UserDep, ingestor: IngestDep, settings: SettingsDep
) -> Response:
    raw, encoding = await _export_body(request, settings.max_body_bytes)
    result = await service.create_spans(ingestor, user_id=user.id, export=decode.decode_traces(raw, encoding))
    return responses.trace_response(encoding, rejected=result.rejected, message=result.message)


@router.post(
    LOGS_PATH,
    summary="Receive OTLP/HTTP GenAI log events and attach them to their spans",
    response_model=ExportResponse,
    responses=OTLP_ERRORS,
    openapi_extra=_otlp_body("ExportLogsServiceRequest"),
)
async def export_logs(
    request: Request, user: UserDep, ingestor: IngestDep, settings: SettingsDep
) -> Response:
    raw, encoding = await _export_body(request, settings.max_body_bytes)
    result = await service.create_log_events(
        ingestor, user_id=user.id, export=decode.decode_logs(raw, encoding)
    )
    return responses.logs_response(encoding, rejected=result.rejected, message=result.message)


# What the Langfuse SDK asks besides sending traces: a health check, and the project its keys
# belong to (`auth_check()`, trace links). A Retrace account is one project.


class LangfuseHealth(BaseModel):
    status: str
    version: str


class LangfuseOrganization(BaseModel):
    id: str
    name: str


class LangfuseProject(BaseModel):
    id: str
    name: str
    organization: LangfuseOrganization
    metadata: dict[str, Any]


class LangfuseProjects(BaseModel):
    data: list[LangfuseProject]


@router.get(
    "/api/public/health", summary="Health check in the Langfuse API's form", response_model=LangfuseHealth
)
async def langfuse_health() -> LangfuseHealth:
    return LangfuseHealth(status="OK", version=__version__)


@router.get(
    "/api/public/projects",
    summary="The caller's account as the one project of its keys, in the Langfuse API's form",
    response_model=LangfuseProjects,
    responses=error_responses(401, 429),
)
async def langfuse_projects(user: UserDep) -> LangfuseProjects:
    account = LangfuseOrganization(id=user.id, name=user.id)
    return LangfuseProjects(
        data=[LangfuseProject(id=user.id, name="Retrace", organization=account, metadata={"tier": user.tier})]
    )
