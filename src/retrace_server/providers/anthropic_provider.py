"""Anthropic's Messages API through the official `anthropic` SDK."""

from __future__ import annotations

import json
from typing import Any

import anthropic

from retrace_server.providers.base import ChatRequest, ChatResult, ProviderError, split_options

ANTHROPIC_PARAMETERS = frozenset(
    {"temperature", "top_p", "top_k", "stop_sequences", "tools", "tool_choice", "metadata", "thinking"}
)
# The Messages API requires max_tokens; a span that recorded none gets this.
DEFAULT_MAX_TOKENS = 1024


class AnthropicProvider:
    name = "anthropic"

    def __init__(self, *, api_key: str, base_url: str | None, timeout_s: float, max_retries: int) -> None:
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=max_retries
        )

    async def complete(self, request: ChatRequest) -> ChatResult:
        system, messages = to_anthropic_messages(request.messages, request.system)
        params = request.parameters
        options: dict[str, Any] = {
            k: v for k, v in params.items() if k in ANTHROPIC_PARAMETERS and v is not None
        }
        if "stop" in params and "stop_sequences" not in options:
            stop = params["stop"]
            options["stop_sequences"] = [stop] if isinstance(stop, str) else stop
        if system:
            options["system"] = system
        max_tokens = params.get("max_tokens") or params.get("max_completion_tokens") or DEFAULT_MAX_TOKENS
        options["max_tokens"] = int(max_tokens)
        known, extra = split_options(type(self._client.messages).create, options)
        try:
            response = await self._client.messages.create(
                model=request.model,
                messages=messages,  # type: ignore[arg-type]
                extra_body=extra or None,
                **known,
            )
        except anthropic.APIStatusError as exc:
            raise ProviderError(f"Anthropic API answered {exc.status_code}: {_error_message(exc)}") from exc
        except anthropic.APIError as exc:
            raise ProviderError(f"Anthropic API request failed: {exc}") from exc
        text = "".join(getattr(block, "text", "") for block in response.content if block.type == "text")
        tool_calls = [block.model_dump() for block in response.content if block.type == "tool_use"]
        usage = response.usage
        cached = usage.cache_read_input_tokens or 0
        created = usage.cache_creation_input_tokens or 0
        return ChatResult(
            text=text,
            tool_calls=tool_calls,
            # Anthropic counts cache reads and writes apart from `input_tokens`; we report all input.
            input_tokens=usage.input_tokens + cached + created,
            output_tokens=usage.output_tokens,
            cached_input_tokens=cached,
            model=response.model or request.model,
        )

    async def close(self) -> None:
        await self._client.close()


def to_anthropic_messages(
    messages: list[dict[str, Any]], system: str | None
) -> tuple[str | None, list[dict[str, Any]]]:
    """System prompts move to `system`; tool results become user turns; same-role turns merge."""
    systems = [system] if system else []
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role", "user")
        content = message.get("content")
        if role in ("system", "developer"):
            systems.append(content if isinstance(content, str) else json.dumps(content))
            continue
        if role == "tool":
            role, content = "user", f"Tool result: {_as_text(content)}"
        elif role not in ("user", "assistant"):
            role = "user"
        if content is None or content == "":
            content = _as_text(message.get("tool_calls")) or "(empty)"
        if out and out[-1]["role"] == role:
            out[-1]["content"] = _merge(out[-1]["content"], content)
        else:
            out.append({"role": role, "content": content})
    if out and out[0]["role"] != "user":
        out.insert(0, {"role": "user", "content": "(conversation continues)"})
    return ("\n\n".join(systems) or None), out


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def _merge(first: Any, second: Any) -> Any:
    if isinstance(first, str) and isinstance(second, str):
        return f"{first}\n\n{second}"
    blocks: list[Any] = []
    for part in (first, second):
        blocks.extend(part if isinstance(part, list) else [{"type": "text", "text": _as_text(part)}])
    return blocks


def _error_message(exc: anthropic.APIStatusError) -> str:
    body: Any = exc.body
    if isinstance(body, dict):
        detail = body.get("error", body)
        if isinstance(detail, dict) and detail.get("message"):
            return str(detail["message"])
    return exc.message
