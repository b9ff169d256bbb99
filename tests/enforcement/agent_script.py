"""Agents recorded by the official `retrace` client under server guardrails; run as subprocesses.

`python agent_script.py <mode> [tools]`, with RETRACE_* and FAKE_LLM_URL in the environment:

- `spend`: calls the model up to 10 times in a row;
- `loop`: asks the model to call `search` up to 10 times with the same arguments;
- `tools`: asks the model to call each tool of the comma-separated list in turn, runs it, then
  answers (`refund_order` among them is the risky step an approval policy holds);
- `golden`: `retrace.mark_golden(<trace id>)` from the SDK.

Prints one JSON line: the trace id, how it ended, the SDK's enforcement error if one stopped it,
and the server signals the SDK reported (`on_error`) while it ran.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import openai
import retrace
from openai.types.chat import (
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageParam,
)

llm = openai.OpenAI(base_url=os.environ["FAKE_LLM_URL"] + "/v1", api_key="sk-test")
MODEL = os.environ.get("AGENT_MODEL", "gpt-4o")
recorded: dict[str, Any] = {}
signals: list[dict[str, Any]] = []
# Set on the configuration itself: `configure()` refuses the `rt_live_` keys this server still issues.
retrace.config.get_config().on_error = lambda signal: signals.append(
    {"code": signal.code, "message": signal.message, "retryable": signal.retryable}
)


def _tool(name: str) -> ChatCompletionFunctionToolParam:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": f"The {name} tool",
            "parameters": {"type": "object", "properties": {"request": {"type": "string"}}},
        },
    }


def _call_tool(messages: list[ChatCompletionMessageParam], name: str) -> None:
    """One model turn that calls `name`, and the tool's result fed back."""
    response = llm.chat.completions.create(
        model=MODEL,
        messages=messages,
        tools=[_tool(name)],
        tool_choice={"type": "function", "function": {"name": name}},
    )
    tool_calls = response.choices[0].message.tool_calls
    assert tool_calls, "the fake LLM server calls the tool it is told to"
    call = tool_calls[0]
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    messages.append(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": name, "arguments": call.function.arguments},
                }
            ],
        }
    )
    messages.append({"role": "tool", "tool_call_id": call.id, "content": f"{name} done for order 42"})


@retrace.record(name="support-agent")
def agent(mode: str, tools: list[str]) -> str:
    recorder = retrace.get_active_recorder()
    assert recorder is not None
    recorded["trace_id"] = recorder.trace.id
    messages: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "Order 42 arrived broken, please help."}
    ]
    if mode == "spend":
        for turn in range(10):
            reply = llm.chat.completions.create(model=MODEL, messages=messages)
            messages.append({"role": "assistant", "content": reply.choices[0].message.content or ""})
            messages.append({"role": "user", "content": f"Tell me more ({turn})."})
        return "done"
    if mode == "loop":
        for _ in range(10):
            _call_tool(messages, "search")
        return "done"
    for name in tools:
        _call_tool(messages, name)
    reply = llm.chat.completions.create(model=MODEL, messages=messages)
    return reply.choices[0].message.content or ""


def _await_signal() -> None:
    """With AWAIT_SERVER_SIGNAL set, waits (up to 10 s) for the server's answer to be read: the SDK
    stops reading its stream when it shuts down, so an agent that ends at once may exit before the
    error frames it was sent are read, which a longer-lived agent would see."""
    if not os.environ.get("AWAIT_SERVER_SIGNAL"):
        return
    deadline = time.monotonic() + 10
    while not signals and time.monotonic() < deadline:
        time.sleep(0.05)


def main() -> None:
    mode = sys.argv[1]
    if mode == "golden":
        retrace.mark_golden(sys.argv[2])
        print(json.dumps({"marked": sys.argv[2]}))
        return
    tools = [t for t in (sys.argv[2] if len(sys.argv) > 2 else "").split(",") if t]
    result: dict[str, Any] = {}
    try:
        result["answer"] = agent(mode, tools)
        result["outcome"] = "finished"
    except retrace.RetraceEnforcementError as exc:
        result.update(outcome="stopped", verdict=exc.verdict, reason=exc.reason, policy_id=exc.policy_id)
    _await_signal()
    retrace.shutdown()
    print(json.dumps({"trace_id": recorded.get("trace_id"), "signals": signals, **result}))


if __name__ == "__main__":
    main()
