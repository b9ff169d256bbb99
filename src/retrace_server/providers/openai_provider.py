"""OpenAI and OpenAI-compatible endpoints through the official `openai` SDK."""

from __future__ import annotations

from typing import Any

import openai

from retrace_server.providers.base import (
    ApiProtocol,
    ChatResult,
    ProviderError,
    ToolCall,
    parse_arguments,
    split_options,
)


class OpenAIProvider:
    name: ApiProtocol = "openai"

    def __init__(self, *, api_key: str, base_url: str | None, timeout_s: float, max_retries: int) -> None:
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=max_retries
        )

    async def complete(self, body: dict[str, Any]) -> ChatResult:
        """Sends `body`, a Chat Completions request, as it is."""
        options = {k: v for k, v in body.items() if k not in ("model", "messages")}
        known, extra = split_options(type(self._client.chat.completions).create, options)
        try:
            response = await self._client.chat.completions.create(
                model=body["model"],
                messages=body["messages"],
                extra_body=extra or None,
                **known,
            )
        except openai.APIStatusError as exc:
            raise ProviderError(f"OpenAI API answered {exc.status_code}: {_error_message(exc)}") from exc
        except openai.APIError as exc:
            raise ProviderError(f"OpenAI API request failed: {exc}") from exc
        if not response.choices:
            raise ProviderError("OpenAI API answered without choices")
        message = response.choices[0].message
        calls = [
            ToolCall(
                id=call.id,
                name=call.function.name,
                arguments=parse_arguments(call.function.arguments),
                raw_arguments=call.function.arguments,
            )
            for call in (message.tool_calls or [])
            if call.type == "function"
        ]
        turn: dict[str, Any] = {"role": "assistant", "content": message.content}
        if message.refusal is not None:
            turn["refusal"] = message.refusal
        if calls:
            turn["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.raw_arguments}}
                for c in calls
            ]
        usage = response.usage
        cached = 0
        if usage is not None and usage.prompt_tokens_details is not None:
            cached = usage.prompt_tokens_details.cached_tokens or 0
        return ChatResult(
            protocol="openai",
            text=message.content or "",
            tool_calls=calls,
            message=turn,
            input_tokens=usage.prompt_tokens if usage else None,
            output_tokens=usage.completion_tokens if usage else None,
            cached_input_tokens=cached,
            model=response.model or str(body["model"]),
        )

    async def close(self) -> None:
        await self._client.close()


def _error_message(exc: openai.APIStatusError) -> str:
    body: Any = exc.body
    if isinstance(body, dict):
        detail = body.get("error", body)
        if isinstance(detail, dict) and detail.get("message"):
            return str(detail["message"])
        if isinstance(detail, str):
            return detail
    return exc.message
