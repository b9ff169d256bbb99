"""OpenAI and OpenAI-compatible endpoints through the official `openai` SDK."""

from __future__ import annotations

from typing import Any

import openai

from retrace_server.providers.base import ChatRequest, ChatResult, ProviderError, split_options

# Sampling and output options the Chat Completions API accepts; others recorded on a span are dropped.
OPENAI_PARAMETERS = frozenset(
    {
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "presence_penalty",
        "frequency_penalty",
        "seed",
        "n",
        "logit_bias",
        "response_format",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "reasoning_effort",
        "user",
    }
)


class OpenAIProvider:
    name = "openai"

    def __init__(self, *, api_key: str, base_url: str | None, timeout_s: float, max_retries: int) -> None:
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=max_retries
        )

    async def complete(self, request: ChatRequest) -> ChatResult:
        messages = list(request.messages)
        if request.system:
            messages.insert(0, {"role": "system", "content": request.system})
        options = {k: v for k, v in request.parameters.items() if k in OPENAI_PARAMETERS and v is not None}
        known, extra = split_options(type(self._client.chat.completions).create, options)
        try:
            response = await self._client.chat.completions.create(
                model=request.model,
                messages=messages,  # type: ignore[arg-type]
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
        tool_calls = [call.model_dump(exclude_none=True) for call in (message.tool_calls or [])]
        usage = response.usage
        cached = 0
        if usage is not None and usage.prompt_tokens_details is not None:
            cached = usage.prompt_tokens_details.cached_tokens or 0
        return ChatResult(
            text=message.content or "",
            tool_calls=tool_calls,
            input_tokens=usage.prompt_tokens if usage else None,
            output_tokens=usage.completion_tokens if usage else None,
            cached_input_tokens=cached,
            model=response.model or request.model,
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
