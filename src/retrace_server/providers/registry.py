"""Which provider replays a span, and the SDK clients a replay uses."""

from __future__ import annotations

from retrace_server.config import Settings
from retrace_server.providers.base import ChatProvider, ProviderConfigError

# Providers that speak the OpenAI Chat Completions protocol, reached through RETRACE_OPENAI_BASE_URL.
OPENAI_COMPATIBLE = frozenset(
    {
        "openai",
        "azure",
        "azure_openai",
        "openrouter",
        "groq",
        "together",
        "vllm",
        "ollama",
        "deepseek",
        "litellm",
    }
)
ANTHROPIC = frozenset({"anthropic", "claude"})
PROVIDER_TIMEOUT_S = 120.0
PROVIDER_MAX_RETRIES = 2


# Names the official Retrace SDK gives the LLM spans it records, by the protocol they spoke.
SDK_SPAN_NAMES = {
    "openai.chat.completions.create": "openai",
    "anthropic.messages.create": "anthropic",
    "retrace.ai.generate": "gemini",
}
GEMINI = frozenset({"gemini", "google", "google_genai", "vertex", "vertex_ai", "vertexai"})
GEMINI_UNSUPPORTED = (
    "Gemini calls are not replayed on the server: the official SDK records their `contents` as "
    "text, so the request Gemini received cannot be rebuilt; replay the fork in your agent "
    "(`mode: agent`)"
)


def provider_name(*, provider: str | None, model: str | None, span_name: str | None = None) -> str:
    """`openai` or `anthropic`: from the recorded provider, else the SDK's span name, else the model.

    Raises ProviderConfigError for a provider replay cannot speak (Gemini, or an unknown name).
    """
    if provider:
        key = provider.strip().lower()
        if key in OPENAI_COMPATIBLE:
            return "openai"
        if key in ANTHROPIC:
            return "anthropic"
        if key in GEMINI:
            raise ProviderConfigError(GEMINI_UNSUPPORTED)
        raise ProviderConfigError(
            f"unknown provider {provider!r}: replay supports OpenAI-compatible endpoints "
            "(set metadata.provider to 'openai' and RETRACE_OPENAI_BASE_URL) and Anthropic ('anthropic')"
        )
    by_name = SDK_SPAN_NAMES.get(span_name or "")
    if by_name == "gemini":
        raise ProviderConfigError(GEMINI_UNSUPPORTED)
    if by_name:
        return by_name
    if model and model.split("/")[-1].lower().startswith("claude"):
        return "anthropic"
    # Any other model is served through the OpenAI-compatible endpoint (OpenAI, vLLM, Ollama...).
    return "openai"


class ProviderPool:
    """Creates at most one client per provider for one replay, checking its settings first."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._clients: dict[str, ChatProvider] = {}

    def check(self, name: str) -> None:
        if name == "openai" and not self._settings.openai_api_key:
            raise ProviderConfigError(
                "RETRACE_OPENAI_API_KEY is not set: give it (and RETRACE_OPENAI_BASE_URL for an "
                "OpenAI-compatible endpoint) to replay OpenAI spans"
            )
        if name == "anthropic" and not self._settings.anthropic_api_key:
            raise ProviderConfigError(
                "RETRACE_ANTHROPIC_API_KEY is not set: give it (and RETRACE_ANTHROPIC_BASE_URL "
                "for another endpoint) to replay Anthropic spans"
            )

    def get(self, name: str) -> ChatProvider:
        client = self._clients.get(name)
        if client is not None:
            return client
        self.check(name)
        s = self._settings
        # The provider SDKs are imported on first use: together they weigh ~100 MB per process.
        if name == "openai":
            from retrace_server.providers.openai_provider import OpenAIProvider

            assert s.openai_api_key
            client = OpenAIProvider(
                api_key=s.openai_api_key,
                base_url=s.openai_base_url,
                timeout_s=PROVIDER_TIMEOUT_S,
                max_retries=PROVIDER_MAX_RETRIES,
            )
        else:
            from retrace_server.providers.anthropic_provider import AnthropicProvider

            assert s.anthropic_api_key
            client = AnthropicProvider(
                api_key=s.anthropic_api_key,
                base_url=s.anthropic_base_url,
                timeout_s=PROVIDER_TIMEOUT_S,
                max_retries=PROVIDER_MAX_RETRIES,
            )
        self._clients[name] = client
        return client

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
