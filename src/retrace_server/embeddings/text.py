"""The readable text of a span: what both the embedder and the highlights read."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

# all-MiniLM-L6-v2 was trained on 128 word pieces (about 550 characters of English) and the local
# embedder reads no more (backends.MAX_TOKENS): the model gets what it reads well, and nothing is
# prepared for it that it would cut. Input and output get a share each, so a long prompt never
# hides the answer.
EMBED_CHARS = 560
PART_CHARS = 250
HIGHLIGHT_SOURCE_CHARS = 20_000


def readable(value: Any) -> str:
    """Chat messages as `role: content` lines, strings as they are, other JSON compact."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("messages"), list):
        rest = {k: v for k, v in value.items() if k != "messages"}
        text = _messages(value["messages"])
        return f"{text}\n{_compact(rest)}" if rest else text
    if isinstance(value, list) and value and all(_is_message(item) for item in value):
        return _messages(value)
    if _is_message(value):
        return _messages([value])
    return _compact(value)


def _is_message(item: Any) -> bool:
    return isinstance(item, Mapping) and "role" in item and ("content" in item or "tool_calls" in item)


def _messages(messages: list[Any]) -> str:
    lines = []
    # Repeated system prompts say little about one step; they go last so the model reads the turn.
    ordered = sorted(messages, key=lambda m: isinstance(m, Mapping) and m.get("role") == "system")
    for message in ordered:
        if not isinstance(message, Mapping):
            lines.append(readable(message))
            continue
        content = _content(message.get("content"))
        if message.get("tool_calls"):
            content = f"{content} {_compact(message['tool_calls'])}".strip()
        lines.append(f"{message.get('role', 'unknown')}: {content}")
    return "\n".join(lines)


def _content(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
            else:
                parts.append(_compact(part))
        return " ".join(parts)
    return readable(content)


def _compact(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return str(value)


def span_text(span: Mapping[str, Any], *, limit: int = EMBED_CHARS, part_chars: int | None = None) -> str:
    """Name, type, model and error, then the input and output (`part_chars` of each: PART_CHARS
    for the embedder, else `limit`), cut to `limit` characters."""
    header = " ".join(str(span[k]) for k in ("name", "span_type", "model") if span.get(k))
    parts = [header]
    if span.get("error"):
        parts.append(f"error: {span['error']}")
    if part_chars is None:
        part_chars = PART_CHARS if limit == EMBED_CHARS else limit
    for field in ("input", "output"):
        text = readable(span.get(field)).strip()
        if text:
            parts.append(text[:part_chars])
    return "\n".join(p for p in parts if p)[:limit]


def content_hash(text: str, *, embedder_id: str) -> str:
    """Cache key of a text's vector; the embedder is part of it, so changing models never mixes vectors."""
    return hashlib.sha256(f"{embedder_id}\x00{text}".encode()).hexdigest()
