"""A small agent that really runs against the fake LLM server and records its run as a trace."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import anthropic
import openai
from anthropic.types import MessageParam
from openai.types.chat import ChatCompletionMessageParam

from tests.fakes.llm_server import FakeLLMServer
from tests.support.server import ApiUser

SYSTEM = "You are a travel assistant."
WEATHER = {"city": "Paris", "temp_c": 21, "sky": "clear"}


def _stamp(base: datetime, seconds: float) -> str:
    return (base + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def _anthropic_messages(messages: list[dict[str, Any]]) -> list[MessageParam]:
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def _openai_messages(messages: list[dict[str, Any]]) -> list[ChatCompletionMessageParam]:
    """The system prompt, then the conversation's user and assistant turns."""
    full: list[ChatCompletionMessageParam] = [{"role": "system", "content": SYSTEM}]
    for m in messages:
        if m["role"] == "user":
            full.append({"role": "user", "content": m["content"]})
        else:
            full.append({"role": "assistant", "content": m["content"]})
    return full


class Recorder:
    """Calls the provider through its official SDK and keeps each call as a span."""

    def __init__(
        self, llm: FakeLLMServer, *, provider: str, model: str, record_provider: bool = True
    ) -> None:
        self.provider, self.model, self.record_provider = provider, model, record_provider
        self.spans: list[dict[str, Any]] = []
        self._base = datetime.now(UTC) - timedelta(hours=1)
        if provider == "anthropic":
            self._anthropic = anthropic.Anthropic(base_url=llm.url, api_key="test", max_retries=0)
        else:
            self._openai = openai.OpenAI(base_url=f"{llm.url}/v1", api_key="test", max_retries=0)

    def llm(self, name: str, messages: list[dict[str, Any]]) -> str:
        if self.provider == "anthropic":
            reply = self._anthropic.messages.create(
                model=self.model, system=SYSTEM, messages=_anthropic_messages(messages), max_tokens=200
            )
            text = reply.content[0].text  # type: ignore[union-attr]
            tokens = (reply.usage.input_tokens, reply.usage.output_tokens)
            span_input: dict[str, Any] = {"system": SYSTEM, "messages": messages, "max_tokens": 200}
        else:
            full = _openai_messages(messages)
            completion = self._openai.chat.completions.create(model=self.model, messages=full)
            text = completion.choices[0].message.content or ""
            assert completion.usage is not None
            tokens = (completion.usage.prompt_tokens, completion.usage.completion_tokens)
            span_input = {"messages": full}
        metadata = {"provider": self.provider} if self.record_provider else {}
        self._add("llm_call", name, span_input, text, model=self.model, tokens=tokens, metadata=metadata)
        return text

    def tool(self, name: str, args: dict[str, Any], result: Any) -> Any:
        self._add("tool_call", name, args, result)
        return result

    def _add(self, kind: str, name: str, span_input: Any, output: Any, **extra: Any) -> None:
        index = len(self.spans)
        tokens = extra.pop("tokens", (None, None))
        self.spans.append(
            {
                "id": f"{name}-{uuid.uuid4().hex[:8]}",
                "span_type": kind,
                "name": name,
                "input": span_input,
                "output": output,
                "input_tokens": tokens[0],
                "output_tokens": tokens[1],
                "duration_ms": 100,
                "started_at": _stamp(self._base, index),
                "ended_at": _stamp(self._base, index + 0.1),
                **extra,
            }
        )
        time.sleep(0)


def run_travel_agent(
    user: ApiUser,
    llm: FakeLLMServer,
    *,
    provider: str = "openai",
    model: str = "gpt-4o-mini",
    question: str = "What should I wear in Paris today?",
    record_provider: bool = True,
) -> dict[str, Any]:
    """plan (LLM) -> get_weather (tool) -> answer (LLM) -> polish (LLM, quoting the answer)."""
    rec = Recorder(llm, provider=provider, model=model, record_provider=record_provider)
    ask = {"role": "user", "content": question}
    plan = rec.llm("plan", [ask])
    weather = rec.tool("get_weather", {"city": "Paris"}, WEATHER)
    answer = rec.llm(
        "answer",
        [
            ask,
            {"role": "assistant", "content": plan},
            {"role": "user", "content": f"Weather: {json.dumps(weather)}"},
            {"role": "user", "content": "Now answer the question."},
        ],
    )
    final = rec.llm(
        "polish", [{"role": "user", "content": f"Polish this answer for the traveller: {answer}"}]
    )
    trace = {
        "id": str(uuid.uuid4()),
        "name": "travel-agent",
        "status": "completed",
        "input": question,
        "output": final,
        "started_at": rec.spans[0]["started_at"],
        "ended_at": rec.spans[-1]["ended_at"],
        "spans": rec.spans,
    }
    r = user.client.post("/api/v1/traces", json=trace)
    assert r.status_code == 201, r.text
    return user.client.get(f"/api/v1/traces/{trace['id']}").json()
