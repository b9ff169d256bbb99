"""OTLP attribute values as plain Python values, and the readers the mapping uses on them."""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable
from typing import Any

import orjson
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

Attributes = dict[str, Any]


def clean(text: str) -> str:
    """Text without NUL characters, which PostgreSQL cannot store in text or JSON."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return clean(value.string_value)
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {clean(kv.key): any_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, kind)


def attributes(key_values: Iterable[KeyValue]) -> Attributes:
    return {clean(kv.key): any_value(kv.value) for kv in key_values}


def parse_json(value: Any) -> Any:
    """A JSON text as its value (instrumentations serialise objects into string attributes)."""
    if isinstance(value, str) and value[:1] in ("{", "[", '"'):
        if "\\u0000" in value:
            value = value.replace("\\u0000", "\\ufffd")
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and math.isfinite(value) and value >= 0:
        return int(value)
    if isinstance(value, str):
        try:
            return as_int(float(value))
        except ValueError:
            return None
    return None


def as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
        return number if math.isfinite(number) and number >= 0 else None
    if isinstance(value, str):
        try:
            return as_float(float(value))
        except ValueError:
            return None
    return None


def as_text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode() if isinstance(value, dict | list) else str(value)


def pop_first(attrs: Attributes, *keys: str) -> Any:
    """The value of the first of `keys` present (all of them are consumed)."""
    found = None
    for key in keys:
        if key in attrs:
            value = attrs.pop(key)
            if found is None and value is not None and value != "":
                found = value
    return found


def pop_prefixed(attrs: Attributes, prefix: str) -> dict[str, Any]:
    """Every attribute under `prefix` (ending with a dot), keyed by the rest of its name."""
    size = len(prefix)
    keys = [key for key in attrs if key.startswith(prefix)]
    return {key[size:]: attrs.pop(key) for key in keys}


def unflatten(flat: dict[str, Any]) -> Any:
    """`{"0.message.role": "user"}` as `[{"message": {"role": "user"}}]`: the indexed attribute
    lists of OpenInference and OpenLLMetry, back in their nested shape."""
    root: dict[str, Any] = {}
    for key, value in flat.items():
        node = root
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        last = parts[-1]
        if not isinstance(node.get(last), dict):
            node[last] = value
    return _lists(root)


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if node and all(key.isdigit() for key in node):
        return [_lists(node[key]) for key in sorted(node, key=int)]
    return {key: _lists(value) for key, value in node.items()}
