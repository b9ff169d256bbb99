"""Anthropic's Messages API through the official `anthropic` SDK."""

from __future__ import annotations

import json
from typing import Any

import anthropic

from retrace_server.providers.base import ApiProtocol, ChatResult, ProviderError, ToolCall, split_options


class AnthropicProvider:
    name: ApiProtocol = "anthropic"

    def __init__(self, *, api_key: str, base_url: str | None, timeout_s: float, max_retries: int) -> None:
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=max_retries
        )

    async def complete(self, body: dict[str, Any]) -> ChatResult:
        """Sends `body`, a Messages request, as it is."""
        options = {k: v for k, v in body.items() if k not in ("model", "messages")}
        known, extra = split_options(type(self._client.messages).create, options)
        try:
            response = await self._client.messages.create(
                model=body["model"],
                messages=body["messages"],
                extra_body=extra or None,
                **known,
            )
        except anthropic.APIStatusError as exc:
            raise ProviderError(f"Anthropic API answered {exc.status_code}: {_error_message(exc)}") from exc
        except anthropic.APIError as exc:
            raise ProviderError(f"Anthropic API request failed: {exc}") from exc
        blocks = [block.model_dump(exclude_none=True) for block in response.content]
        text = "\n".join(b["text"] for b in blocks if b.get("type") == "text" and b.get("text"))
        calls = [
            ToolCall(
                id=b["id"],
                name=b["name"],
                arguments=b.get("input"),
                raw_arguments=json.dumps(b.get("input"), ensure_ascii=False),
            )
            for b in blocks
            if b.get("type") == "tool_use"
        ]
        usage = response.usage
        cached = usage.cache_read_input_tokens or 0
        created = usage.cache_creation_input_tokens or 0
        return ChatResult(
            protocol="anthropic",
            text=text,
            tool_calls=calls,
            message={"role": "assistant", "content": blocks},
            # Anthropic counts cache reads and writes apart from `input_tokens`; we report all input.
            input_tokens=usage.input_tokens + cached + created,
            output_tokens=usage.output_tokens,
            cached_input_tokens=cached,
            model=response.model or str(body["model"]),
        )

    async def close(self) -> None:
        await self._client.close()


def _error_message(exc: anthropic.APIStatusError) -> str:
    body: Any = exc.body
    if isinstance(body, dict):
        detail = body.get("error", body)
        if isinstance(detail, dict) and detail.get("message"):
            return str(detail["message"])
    return exc.message
