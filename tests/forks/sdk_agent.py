"""A tool-using travel agent recorded by the official `retrace` client; run as a subprocess by the tests.

`python sdk_agent.py openai|anthropic QUESTION [TOOLS]` answers through the official `openai` or
`anthropic` client (pointed at FAKE_LLM_URL), runs each tool the model calls inside a tool span,
and loops until the model answers in text. The fake provider calls each offered tool once, so
with the default two tools a run is three LLM calls and two tool calls; with five, six LLM calls
whose conversations outgrow what the SDK records of a call, and one tool result longer than it
keeps of a message. Prints one JSON line: the trace id and the answer.

The Anthropic agent sends no `system` prompt and the tools no descriptions: the official SDK
records neither, so no replay could send them back.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import anthropic
import openai
import retrace

SYSTEM = "You are a travel assistant. Check the weather before you advise."
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOL_NAMES = ["get_weather", "get_packing_list", "get_events", "get_currency", "get_transport"]
TOOL_COUNT = int(sys.argv[3]) if len(sys.argv) > 3 else 2
OPENAI_TOOLS: list[Any] = [
    {"type": "function", "function": {"name": name, "parameters": SCHEMA}} for name in TOOL_NAMES[:TOOL_COUNT]
]
ANTHROPIC_TOOLS: list[Any] = [{"name": name, "input_schema": SCHEMA} for name in TOOL_NAMES[:TOOL_COUNT]]
recorded: dict[str, str] = {}


def run_tool(name: str, args: dict[str, Any]) -> dict[str, Any]:
    if name == "get_weather":
        return {"city": args["city"], "temp_c": 21, "sky": "clear"}
    if name == "get_events":
        return {
            "city": args["city"],
            "events": [f"Open-air concert number {n} by the river" for n in range(40)],
        }
    return {"city": args["city"], "tool": name, "items": ["light jacket", "sunglasses"]}


def call_tool(name: str, args: dict[str, Any]) -> str:
    recorder = retrace.get_active_recorder()
    assert recorder is not None
    span = recorder.start_span(name, span_type=retrace.SpanType.TOOL_CALL, input=args)
    result = run_tool(name, args)
    recorder.end_span(span, output=result)
    return json.dumps(result)


@retrace.record(name="travel-agent-openai")
def openai_agent(question: str) -> str:
    recorder = retrace.get_active_recorder()
    assert recorder is not None
    recorded["trace_id"] = recorder.trace.id
    client = openai.OpenAI(base_url=os.environ["FAKE_LLM_URL"] + "/v1", api_key="sk-test", max_retries=0)
    messages: list[Any] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    while True:
        reply = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=messages,
            tools=OPENAI_TOOLS,
            temperature=0.2,
            seed=7,
            max_tokens=300,
        )
        message = reply.choices[0].message
        if not message.tool_calls:
            return message.content or ""
        messages.append(message)
        for call in message.tool_calls:
            assert call.type == "function"
            output = call_tool(call.function.name, json.loads(call.function.arguments))
            messages.append({"role": "tool", "tool_call_id": call.id, "content": output})


@retrace.record(name="travel-agent-anthropic")
def anthropic_agent(question: str) -> str:
    recorder = retrace.get_active_recorder()
    assert recorder is not None
    recorded["trace_id"] = recorder.trace.id
    client = anthropic.Anthropic(base_url=os.environ["FAKE_LLM_URL"], api_key="sk-ant-test", max_retries=0)
    messages: list[Any] = [{"role": "user", "content": question}]
    while True:
        reply = client.messages.create(
            model="claude-3-5-haiku-20241022",
            max_tokens=300,
            messages=messages,
            tools=ANTHROPIC_TOOLS,
            # The anthropic client no longer takes sampling options as arguments.
            extra_body={"temperature": 0.2},
        )
        uses = [block for block in reply.content if block.type == "tool_use"]
        if not uses:
            return "".join(block.text for block in reply.content if block.type == "text")
        messages.append({"role": "assistant", "content": reply.content})
        results = [
            {"type": "tool_result", "tool_use_id": use.id, "content": call_tool(use.name, dict(use.input))}
            for use in uses
        ]
        messages.append({"role": "user", "content": results})


if __name__ == "__main__":
    agent = openai_agent if sys.argv[1] == "openai" else anthropic_agent
    answer = agent(sys.argv[2])
    retrace.shutdown()
    print(json.dumps({"trace_id": recorded["trace_id"], "answer": answer}))
