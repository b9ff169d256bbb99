"""OTLP/HTTP answers in the request's own encoding.

Success is an `Export*ServiceResponse` (with `partial_success` when some items were refused);
failure is a `google.rpc.Status`. In JSON the Status also carries the server's `error` field, so
clients of either convention read it.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from starlette.responses import Response

from retrace_server.otlp.decode import Encoding

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

# gRPC codes a Status carries, by HTTP status (as the OTLP/HTTP receivers of the Collector do).
_GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 413: 8, 415: 3, 429: 8, 503: 14}


def trace_response(encoding: Encoding, *, rejected: int, message: str) -> Response:
    answer = ExportTraceServiceResponse()
    if rejected:
        answer.partial_success.rejected_spans = rejected
        answer.partial_success.error_message = message
    return _encode(answer, encoding)


def logs_response(encoding: Encoding, *, rejected: int, message: str) -> Response:
    answer = ExportLogsServiceResponse()
    if rejected:
        answer.partial_success.rejected_log_records = rejected
        answer.partial_success.error_message = message
    return _encode(answer, encoding)


def _encode(answer: ExportTraceServiceResponse | ExportLogsServiceResponse, encoding: Encoding) -> Response:
    if encoding == "protobuf":
        return Response(answer.SerializeToString(), media_type=PROTOBUF)
    return Response(orjson.dumps(MessageToDict(answer)), media_type=JSON)


def status_response(
    encoding: Encoding, status: int, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    code = _GRPC_CODES.get(status, 2)
    if encoding == "protobuf":
        return Response(
            _status_bytes(code, message), status_code=status, media_type=PROTOBUF, headers=dict(headers or {})
        )
    body = orjson.dumps({"error": message, "code": code, "message": message})
    return Response(body, status_code=status, media_type=JSON, headers=dict(headers or {}))


def _status_bytes(code: int, message: str) -> bytes:
    """`google.rpc.Status{code, message}` in protobuf wire format (field 1 varint, field 2 string)."""
    text = message.encode()
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
