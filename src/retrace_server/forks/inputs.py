"""Span inputs and outputs in the shapes agents record them: their text, a fork's change, new outputs.

Inputs are a chat (`{"messages": [...]}` or a bare list of messages), a prompt string, or an
object with a `prompt`; outputs are a string, an assistant message, an OpenAI completion or an
Anthropic message. `recording` turns them into provider requests.
"""

from __future__ import annotations

import copy
import json
from typing import Any

_ROLE_ALIASES = {"human": "user", "ai": "assistant", "model": "assistant", "bot": "assistant"}
# Shorter outputs ("ok", "42") are only replaced where they are a whole value, never inside text.
MIN_EMBEDDED_LENGTH = 12


def to_text(value: Any) -> str:
    """The readable text of an output or content value."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        choices = value.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            first = choices[0]
            return to_text(first.get("message") or first.get("text") or first.get("delta"))
        if "content" in value and (value.get("content") or not value.get("tool_calls")):
            return to_text(value["content"])
        if isinstance(value.get("text"), str):
            return str(value["text"])
    if isinstance(value, list) and value and all(isinstance(b, dict) and "text" in b for b in value):
        return "".join(str(b["text"]) for b in value)
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def _is_chat(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(m, dict) and ("role" in m or "type" in m) for m in value
    )


def apply_modified_input(original: Any, modified: Any) -> Any:
    """A string replaces the last user message of a chat (or the prompt); an object is merged in."""
    if isinstance(modified, str):
        if isinstance(original, dict) and _is_chat(original.get("messages")):
            return {**original, "messages": _replace_last_user(original["messages"], modified)}
        if _is_chat(original):
            return _replace_last_user(original, modified)
        if isinstance(original, dict) and isinstance(original.get("prompt"), str):
            return {**original, "prompt": modified}
        return modified
    if isinstance(modified, dict):
        if isinstance(original, dict):
            return {**original, **modified}
        if _is_chat(original):
            return {"messages": original, **modified}
        if isinstance(original, str):
            return {"prompt": original, **modified}
    return modified


def _replace_last_user(messages: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    out = list(messages)
    for index in range(len(out) - 1, -1, -1):
        role = out[index].get("role") or out[index].get("type")
        if _ROLE_ALIASES.get(str(role), role) == "user":
            out[index] = {**out[index], "content": text}
            return out
    return [*out, {"role": "user", "content": text}]


class Substitutions:
    """Replaces the original outputs of replayed steps with their new outputs wherever they appear."""

    def __init__(self) -> None:
        self._whole: dict[str, Any] = {}
        self._embedded: list[tuple[str, str]] = []
        self._objects: list[tuple[Any, Any]] = []

    def __bool__(self) -> bool:
        return bool(self._whole or self._objects)

    def add(self, old: Any, new: Any) -> None:
        if old is None or old == new:
            return
        old_text, new_text = to_text(old), to_text(new)
        if not isinstance(old, str):
            self._objects.append((old, new))
            # Tool results are often passed on as JSON text.
            for dumped in (
                json.dumps(old),
                json.dumps(old, separators=(",", ":")),
                json.dumps(old, ensure_ascii=False),
            ):
                new_dumped = new if isinstance(new, str) else json.dumps(new)
                self._whole.setdefault(dumped, new_dumped)
                if len(dumped) >= MIN_EMBEDDED_LENGTH:
                    self._embedded.append((dumped, new_dumped))
        if old_text and old_text != new_text:
            self._whole[old_text] = new_text
            if len(old_text) >= MIN_EMBEDDED_LENGTH:
                self._embedded.append((old_text, new_text))

    def apply(self, value: Any) -> Any:
        if not self:
            return value
        # The walk rebuilds every container, so the recorded input is never changed in place.
        return self._walk(value)

    def _walk(self, value: Any) -> Any:
        for old, new in self._objects:
            if value == old:
                return copy.deepcopy(new)
        if isinstance(value, str):
            if value in self._whole:
                return self._whole[value]
            for old_text, new_text in self._embedded:
                if old_text in value:
                    value = value.replace(old_text, new_text)
            if self._objects and ("{" in value or "[" in value):
                value = self._replace_json_in_text(value)
            return value
        if isinstance(value, dict):
            return {k: self._walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._walk(v) for v in value]
        return value

    def _replace_json_in_text(self, text: str) -> str:
        """Replaces JSON text equal to an old object whatever its key order (storage may reorder keys)."""
        out: list[str] = []
        done = index = 0
        while index < len(text):
            if text[index] not in "{[":
                index += 1
                continue
            try:
                parsed, end = _DECODER.raw_decode(text, index)
            except ValueError:
                index += 1
                continue
            replacement = next((new for old, new in self._objects if parsed == old), _MISSING)
            if replacement is _MISSING:
                index += 1
                continue
            out.append(text[done:index])
            out.append(replacement if isinstance(replacement, str) else json.dumps(replacement))
            done = index = end
        return "".join(out) + text[done:] if out else text


_DECODER = json.JSONDecoder()
_MISSING = object()
