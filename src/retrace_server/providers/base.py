"""What replay asks of an LLM provider, and what it gets back."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol


class ProviderError(Exception):
    """The provider could not answer (configuration, transport or an error response)."""


class ProviderConfigError(ProviderError):
    """A provider is unknown or a setting it needs is missing; the message names the setting."""


@dataclass
class ChatRequest:
    model: str
    messages: list[dict[str, Any]]
    system: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class ChatResult:
    text: str
    tool_calls: list[dict[str, Any]]
    input_tokens: int | None
    output_tokens: int | None
    cached_input_tokens: int
    model: str

    def output(self) -> Any:
        """The output as recorded on a span: the text, or an assistant message when it calls tools."""
        if not self.tool_calls:
            return self.text
        return {"role": "assistant", "content": self.text, "tool_calls": self.tool_calls}


class ChatProvider(Protocol):
    name: str

    async def complete(self, request: ChatRequest) -> ChatResult: ...

    async def close(self) -> None: ...


def split_options(method: Any, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(keyword arguments the SDK method declares, the rest for `extra_body`).

    SDK releases move sampling options in and out of their typed signatures; sending the
    undeclared ones in the body keeps the request the same whatever the installed version.
    """
    declared = _declared(method)
    known = {k: v for k, v in options.items() if k in declared}
    extra = {k: v for k, v in options.items() if k not in declared}
    return known, extra


@lru_cache(maxsize=16)
def _declared(method: Any) -> frozenset[str]:
    return frozenset(inspect.signature(method).parameters)
