"""The request options of each provider protocol: what a recorded step may carry and a fork may set.

A fork's `parameters` must be names from these lists (anything else answers 400); each is sent to
the provider as given, converted only where the two protocols name one option differently.
"""

from __future__ import annotations

from typing import Any

# The Chat Completions request body, less `model`, `messages` and streaming (a replay reads whole answers).
OPENAI_CHAT_PARAMETERS = frozenset(
    {
        "audio",
        "frequency_penalty",
        "function_call",
        "functions",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "max_tokens",
        "metadata",
        "modalities",
        "n",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "prompt_cache_key",
        "prompt_cache_retention",
        "reasoning_effort",
        "response_format",
        "safety_identifier",
        "seed",
        "service_tier",
        "stop",
        "store",
        "temperature",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "user",
        "verbosity",
        "web_search_options",
    }
)
# Sampling options that OpenAI-compatible servers (vLLM, Ollama, Together...) accept beside OpenAI's.
OPENAI_COMPATIBLE_EXTRAS = frozenset({"top_k", "min_p", "repetition_penalty"})
# The Messages request body, less `model`, `messages` and streaming.
ANTHROPIC_MESSAGES_PARAMETERS = frozenset(
    {
        "container",
        "max_tokens",
        "metadata",
        "service_tier",
        "stop_sequences",
        "system",
        "temperature",
        "thinking",
        "tool_choice",
        "tools",
        "top_k",
        "top_p",
    }
)
PROTOCOL_PARAMETERS = {
    "openai": OPENAI_CHAT_PARAMETERS | OPENAI_COMPATIBLE_EXTRAS,
    "anthropic": ANTHROPIC_MESSAGES_PARAMETERS,
}
# What a fork's `parameters` may name: an option of either protocol.
FORK_PARAMETERS = OPENAI_CHAT_PARAMETERS | OPENAI_COMPATIBLE_EXTRAS | ANTHROPIC_MESSAGES_PARAMETERS


def unknown_parameters(names: Any) -> list[str]:
    """The names no protocol knows, sorted."""
    return sorted(str(name) for name in names if name not in FORK_PARAMETERS)


def for_protocol(protocol: str, options: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(the options in the protocol's own names, the names it has no option for).

    OpenAI's `stop` is Anthropic's `stop_sequences`; Anthropic's only length limit is `max_tokens`.
    """
    out: dict[str, Any] = {}
    for name, value in options.items():
        if protocol == "anthropic":
            if name == "stop":
                name, value = "stop_sequences", [value] if isinstance(value, str) else value
            elif name == "max_completion_tokens":
                name = "max_tokens"
        elif name == "stop_sequences":
            name = "stop"
        out[name] = value
    accepted = PROTOCOL_PARAMETERS[protocol]
    return out, sorted(name for name in out if name not in accepted)
