"""What replay asks of an LLM provider, and what it gets back.

A request is the body the provider's API receives, in that provider's own protocol (`openai`
Chat Completions or `anthropic` Messages): a replay sends it as built, so a step goes out as the
provider first received it.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, Protocol

ApiProtocol = Literal["openai", "anthropic"]


class ProviderError(Exception):
    """The provider could not answer (configuration, transport or an error response)."""


class ProviderConfigError(ProviderError):
    """A provider is unknown or a setting it needs is missing; the message names the setting."""


@dataclass(frozen=True)
class ToolCall:
    """One tool call of an answer: its provider id, the tool's name and its arguments."""

    id: str
    name: str
    arguments: Any  # parsed JSON where it parses
    raw_arguments: str  # as the provider wrote them


@dataclass
class ChatResult:
    protocol: ApiProtocol
    text: str
    tool_calls: list[ToolCall]
    # The assistant turn as a later request of the same protocol carries it back.
    message: dict[str, Any]
    input_tokens: int | None
    output_tokens: int | None
    cached_input_tokens: int
    model: str


class ChatProvider(Protocol):
    name: ApiProtocol

    async def complete(self, body: dict[str, Any]) -> ChatResult: ...

    async def close(self) -> None: ...


def parse_arguments(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def split_options(method: Any, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(keyword arguments the SDK method declares, the rest for `extra_body`).

    SDK releases move request options in and out of their typed signatures; sending the
    undeclared ones in the body keeps the request the same whatever the installed version.
    """
    declared = _declared(method)
    known = {k: v for k, v in options.items() if k in declared}
    extra = {k: v for k, v in options.items() if k not in declared}
    return known, extra


@lru_cache(maxsize=16)
def _declared(method: Any) -> frozenset[str]:
    names = set(inspect.signature(method).parameters)
    # Transport options of the SDK method, never request fields.
    return frozenset(names - {"self", "extra_body", "extra_headers", "extra_query", "timeout"})
