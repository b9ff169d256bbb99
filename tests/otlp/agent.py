"""A tool-using agent run against the fake LLM server, recorded by whichever instrumentation wraps it.

plan (LLM, offered the weather tool, answers with a tool call) -> get_weather (tool) ->
answer (LLM, given the tool's result). The instrumentation records the LLM calls; `tool_span`
and `agent_span` record the other steps the way that instrumentation's users do.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import openai
from openai.types.chat import (
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageParam,
)

from tests.fakes.llm_server import FakeLLMServer

SYSTEM = "You are a travel assistant. Use the tools."
QUESTION = "What should I wear in Paris today?"
MODEL = "gpt-4o-mini"
WEATHER = {"city": "Paris", "temp_c": 21, "sky": "clear"}
WEATHER_TOOL: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


class ToolCallingLLM(FakeLLMServer):
    """The fake LLM server, calling the first offered tool when the conversation ends with the user."""

    def chat_completion(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        messages = body.get("messages", [])
        tools = body.get("tools") or []
        if not tools or not messages or messages[-1].get("role") != "user":
            return super().chat_completion(body)
        city = re.search(r"in ([A-Z][a-z]+)", str(messages[-1].get("content")))
        call = {
            "id": f"call_{len(self.requests)}",
            "type": "function",
            "function": {
                "name": tools[0]["function"]["name"],
                "arguments": json.dumps({"city": city.group(1) if city else "Paris"}),
            },
        }
        return 200, {
            "id": f"chatcmpl-tool-{len(self.requests)}",
            "object": "chat.completion",
            "created": 1,
            "model": body.get("model", MODEL),
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "tool_calls",
                    "message": {"role": "assistant", "content": None, "tool_calls": [call]},
                }
            ],
            "usage": {"prompt_tokens": 30, "completion_tokens": 9, "total_tokens": 39},
        }


@dataclass
class Run:
    question: str
    answer: str
    tool_call_id: str
    first_request: dict[str, Any]


ToolSpan = Callable[[str, dict[str, Any], str], AbstractContextManager[Callable[[Any], None]]]
"""(name, arguments, call id) -> a context whose value records the tool's result."""


@contextlib.contextmanager
def no_span(*_args: Any) -> Iterator[Callable[[Any], None]]:
    yield lambda _result: None


def run_weather_agent(client: openai.OpenAI, *, tool_span: ToolSpan, question: str = QUESTION) -> Run:
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": question},
    ]
    first = client.chat.completions.create(
        model=MODEL, messages=messages, tools=[WEATHER_TOOL], temperature=0.2
    )
    tool_calls = first.choices[0].message.tool_calls
    assert tool_calls, "the fake LLM server answers the first turn with a tool call"
    call = tool_calls[0]
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    arguments = json.loads(call.function.arguments)
    with tool_span("get_weather", arguments, call.id) as record:
        result = {**WEATHER, "city": arguments["city"]}
        record(result)
    messages.append(
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.function.name, "arguments": call.function.arguments},
                }
            ],
        }
    )
    messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)})
    second = client.chat.completions.create(
        model=MODEL, messages=messages, tools=[WEATHER_TOOL], temperature=0.2
    )
    return Run(
        question=question,
        answer=second.choices[0].message.content or "",
        tool_call_id=call.id,
        first_request={"messages": messages[:2], "tools": [WEATHER_TOOL], "temperature": 0.2},
    )
