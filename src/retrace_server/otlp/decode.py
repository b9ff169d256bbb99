"""OTLP/HTTP request bodies into the generated OTLP messages: protobuf or JSON, gzip or none.

Both encodings end as the same protobuf message, so everything after decoding has one path.
OTLP/JSON writes trace and span ids as hex where proto3's JSON mapping expects base64; they are
rewritten before parsing (base64 ids from non-conforming exporters are accepted too).
"""

from __future__ import annotations

import base64
import binascii
import zlib
from typing import Any, Literal, TypeVar

import orjson
from google.protobuf.json_format import ParseDict, ParseError
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from retrace_server.otlp.errors import PayloadTooLarge, UndecodableBody, UnsupportedMediaType

Encoding = Literal["protobuf", "json"]
MessageT = TypeVar("MessageT", bound=Message)

_MEDIA_TYPES: dict[str, Encoding] = {
    "application/x-protobuf": "protobuf",
    "application/protobuf": "protobuf",
    "application/json": "json",
}
_ID_LENGTHS = {
    "traceId": 16,
    "trace_id": 16,
    "spanId": 8,
    "span_id": 8,
    "parentSpanId": 8,
    "parent_span_id": 8,
}


def encoding_of(content_type: str | None) -> Encoding:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    encoding = _MEDIA_TYPES.get(media)
    if encoding is None:
        raise UnsupportedMediaType(
            f"Unsupported media type {media or '(none)'!r}: send OTLP as `application/x-protobuf` "
            "or `application/json`"
        )
    return encoding


def decompress(body: bytes, content_encoding: str | None, *, limit: int) -> bytes:
    """The body without its `Content-Encoding`; a body inflating past `limit` bytes is refused."""
    coding = (content_encoding or "").strip().lower()
    if coding in ("", "identity"):
        return body
    if coding != "gzip":
        raise UnsupportedMediaType(f"Unsupported Content-Encoding {coding!r}: send gzip or none")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise UndecodableBody(f"Invalid gzip body: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"Request body too large: the limit is {limit} bytes once decompressed")
    if not inflater.eof:
        raise UndecodableBody("Invalid gzip body: the stream is truncated")
    return out


def decode_traces(body: bytes, encoding: Encoding) -> ExportTraceServiceRequest:
    return _decode(body, encoding, ExportTraceServiceRequest())


def decode_logs(body: bytes, encoding: Encoding) -> ExportLogsServiceRequest:
    return _decode(body, encoding, ExportLogsServiceRequest())


def _decode(body: bytes, encoding: Encoding, message: MessageT) -> MessageT:
    name = type(message).__name__
    if encoding == "protobuf":
        try:
            message.ParseFromString(body)
        except (DecodeError, RuntimeError, ValueError) as exc:
            raise UndecodableBody(f"Invalid protobuf body: not an OTLP {name} ({exc})") from None
        return message
    try:
        document = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise UndecodableBody(f"Invalid JSON body: {exc}") from None
    if not isinstance(document, dict):
        raise UndecodableBody(f"Invalid JSON body: an OTLP {name} is a JSON object")
    _ids_to_base64(document)
    try:
        ParseDict(document, message, ignore_unknown_fields=True)
    except (ParseError, ValueError, TypeError, AttributeError, RecursionError) as exc:
        raise UndecodableBody(f"Invalid JSON body: not an OTLP {name} ({exc})") from None
    return message


def _ids_to_base64(node: Any) -> None:
    """Rewrites every hex id field in place (spans, links, log records) for proto3's JSON parser."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_LENGTHS and isinstance(value, str):
                node[key] = _id_as_base64(value, _ID_LENGTHS[key])
            elif isinstance(value, dict | list):
                _ids_to_base64(value)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, dict | list):
                _ids_to_base64(item)


def _id_as_base64(value: str, size: int) -> str:
    """Hex of the right length, else base64 of the right size; anything else keeps a wrong length,
    so the span is refused by name rather than the whole body."""
    if not value:
        return ""
    if len(value) == size * 2:
        try:
            return base64.b64encode(bytes.fromhex(value)).decode()
        except ValueError:
            pass
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) == size:
        return value
    return base64.b64encode(b"\x00").decode()
