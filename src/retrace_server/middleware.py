"""Pure ASGI middleware: request ids, access log, body limits, content type, crash envelope."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from retrace_server.db import faults

access_log = logging.getLogger("retrace_server.access")
error_log = logging.getLogger("retrace_server.errors")

_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_BODY_METHODS = {"POST", "PUT", "PATCH"}
_JSON_ONLY_PREFIX = "/api/"


class _BodyTooLarge(Exception):
    pass


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _is_json_content_type(value: str) -> bool:
    media = value.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class RequestContextMiddleware:
    """Every response carries `x-request-id` and is logged once; failures keep the error envelope."""

    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, own_body_paths: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # Routes that check their body's type and size themselves, to answer in their own protocol.
        self.own_body_paths = own_body_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        client_id = _header(scope, b"x-request-id")
        request_id = client_id if client_id and _CLIENT_REQUEST_ID.match(client_id) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["response_headers"] = {}
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()
        status_holder = {"status": 500, "started": False}
        id_header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["started"] = True
                headers = [*message.get("headers", []), id_header]
                headers.extend((k.encode(), v.encode()) for k, v in state["response_headers"].items())
                message = {**message, "headers": headers}
            await send(message)

        try:
            if scope["path"] in self.own_body_paths:
                await self.app(scope, receive, send_with_id)
                return
            problem = self._check_request(scope)
            if problem is not None:
                await self._send_error(send_with_id, *problem)
            else:
                await self.app(scope, self._limited_receive(receive), send_with_id)
        except _BodyTooLarge:
            if not status_holder["started"]:
                await self._send_error(send_with_id, 413, self._too_large_message())
        except Exception as exc:
            fault = faults.surface(exc)
            if fault is None:
                error_log.exception(
                    "unhandled error request_id=%s %s %s", request_id, scope["method"], scope["path"]
                )
            if not status_holder["started"]:
                if fault is not None:
                    await self._send_error(send_with_id, fault.status, fault.message, fault.headers)
                else:
                    message = f"Internal server error (request id {request_id})"
                    await self._send_error(send_with_id, 500, message)
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            access_log.info(
                '%s "%s %s" %s %.1fms request_id=%s',
                scope.get("client", ("-",))[0] if scope.get("client") else "-",
                scope["method"],
                scope["path"],
                status_holder["status"],
                elapsed_ms,
                request_id,
            )

    def _too_large_message(self) -> str:
        return (
            f"Request body too large: the limit is {self.max_body_bytes} bytes; send spans in smaller batches"
        )

    def _check_request(self, scope: Scope) -> tuple[int, str] | None:
        if scope["method"] not in _BODY_METHODS:
            return None
        length = _header(scope, b"content-length")
        if length is not None:
            try:
                size = int(length)
            except ValueError:
                return 400, "Invalid Content-Length header"
            if size > self.max_body_bytes:
                return 413, self._too_large_message()
            if size == 0:
                return None
        elif _header(scope, b"transfer-encoding") is None:
            return None
        if not scope["path"].startswith(_JSON_ONLY_PREFIX):
            return None  # the API speaks JSON only; the web interface's forms post form-encoded bodies
        content_type = _header(scope, b"content-type")
        if content_type is None or not _is_json_content_type(content_type):
            return 415, "Unsupported media type: send the body as JSON with `Content-Type: application/json`"
        return None

    def _limited_receive(self, receive: Receive) -> Receive:
        received = 0
        limit = self.max_body_bytes

        async def wrapped() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
            return message

        return wrapped

    @staticmethod
    async def _send_error(
        send: Send, status: int, message: str, extra_headers: dict[str, str] | None = None
    ) -> None:
        body = orjson.dumps({"error": message})
        headers: list[Any] = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *((k.lower().encode(), v.encode()) for k, v in (extra_headers or {}).items()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
