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
from typing import Any

import openai
import retrace

llm = openai.OpenAI(base_url=os.environ["FAKE_LLM_URL"] + "/v1", api_key="sk-test")
MODEL = os.environ.get("AGENT_MODEL", "gpt-4o")
recorded: dict[str, Any] = {}
signals: list[dict[str, Any]] = []
# Set on the configuration itself: `configure()` refuses the `rt_live_` keys this server still issues.
retrace.config.get_config().on_error = lambda signal: signals.append(
    {"code": signal.code, "message": signal.message, "retryable": signal.retryable}
)


def _tool(name: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": f"The {name} tool",
            "parameters": {"type": "object", "properties": {"request": {"type": "string"}}},
        },
    }


def _call_tool(messages: list[dict[str, Any]], name: str) -> None:
    """One model turn that calls `name`, and the tool's result fed back."""
    response = llm.chat.completions.create(
        model=MODEL,
        messages=messages,
        tools=[_tool(name)],
        tool_choice={"type": "function", "function": {"name": name}},
    )
    call = response.choices[0].message.tool_calls[0]
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
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Order 42 arrived broken, please help."}]
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
    retrace.shutdown()
    print(json.dumps({"trace_id": recorded.get("trace_id"), "signals": signals, **result}))


if __name__ == "__main__":
    main()
