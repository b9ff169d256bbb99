"""Conversations in the OpenAI Chat Completions and Anthropic Messages protocols.

What each API requires of a conversation's structure (checked before a request goes out, so a
replay fails with the step's reason rather than the provider's 400), how an answer is carried in
a later request, and the translation of a request from one protocol to the other when a fork
moves a step to another provider's model.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from retrace_server.forks.inputs import to_text
from retrace_server.forks.recording import DEFAULT_MAX_TOKENS, TOOL_CALLS_PREFIX
from retrace_server.providers.base import ChatResult, ToolCall
from retrace_server.providers.parameters import PROTOCOL_PARAMETERS, for_protocol


def problem(protocol: str, messages: list[dict[str, Any]]) -> str | None:
    """Why the API would refuse this conversation, or None."""
    return _anthropic_problem(messages) if protocol == "anthropic" else _openai_problem(messages)


def _openai_problem(messages: list[dict[str, Any]]) -> str | None:
    pending: list[str] = []  # calls of the last assistant turn not answered yet
    answering = False  # inside the run of tool messages that follows an assistant turn with tool calls
    for i, message in enumerate(messages):
        role = message.get("role")
        if role == "tool":
            call_id = message.get("tool_call_id")
            if not call_id:
                return f"messages[{i}] is a tool result without `tool_call_id`"
            if not answering or call_id not in pending:
                return (
                    f"messages[{i}] is a tool result for {call_id!r}, which no preceding assistant "
                    "`tool_calls` entry makes"
                )
            pending.remove(call_id)
            continue
        if pending:
            return f"messages[{i - 1}]: the tool calls {', '.join(pending)} have no tool results"
        calls = message.get("tool_calls") if role == "assistant" else None
        pending = [str(c.get("id")) for c in calls or [] if isinstance(c, dict)]
        answering = bool(pending)
    if pending:
        return f"the tool calls {', '.join(pending)} of the last message have no tool results"
    return None


def _blocks(content: Any, kind: str) -> list[dict[str, Any]]:
    if not isinstance(content, list):
        return []
    return [b for b in content if isinstance(b, dict) and b.get("type") == kind]


def _anthropic_problem(messages: list[dict[str, Any]]) -> str | None:
    if not messages:
        return "the conversation has no messages"
    if messages[0].get("role") != "user":
        return "messages[0] must be a user message"
    previous_uses: list[str] = []
    for i, message in enumerate(messages):
        role = message.get("role")
        if role not in ("user", "assistant"):
            return f"messages[{i}] has role {role!r}; the Messages API takes only user and assistant turns"
        content = message.get("content")
        results = [str(b.get("tool_use_id")) for b in _blocks(content, "tool_result")]
        stray = [r for r in results if r not in previous_uses]
        if stray:
            return (
                f"messages[{i}] has `tool_result` blocks for {', '.join(stray)} without a matching "
                "`tool_use` block in the previous message"
            )
        unanswered = [u for u in previous_uses if u not in results]
        if unanswered:
            return f"messages[{i - 1}]: the `tool_use` blocks {', '.join(unanswered)} have no `tool_result`"
        previous_uses = (
            [str(b.get("id")) for b in _blocks(content, "tool_use")] if role == "assistant" else []
        )
    if previous_uses:
        return f"the `tool_use` blocks {', '.join(previous_uses)} of the last message have no `tool_result`"
    return None


def summary(result: ChatResult) -> str:
    """The answer as the official SDK records it: its text, or a summary of the tools it calls."""
    if result.text or not result.tool_calls:
        return result.text
    # The SDK shows OpenAI's arguments as the provider wrote them and Anthropic's as JSON.
    openai = result.protocol == "openai"
    rendered = [
        f"{c.name}({c.raw_arguments if openai else json.dumps(c.arguments, default=str)})"
        for c in result.tool_calls
    ]
    return TOOL_CALLS_PREFIX + "; ".join(rendered)


def turn(result: ChatResult, protocol: str) -> dict[str, Any]:
    """The answer as an assistant message of `protocol`."""
    if result.protocol == protocol:
        return copy.deepcopy(result.message)
    return _assistant(protocol, result.text, result.tool_calls)


def _assistant(protocol: str, text: str, calls: list[ToolCall]) -> dict[str, Any]:
    if protocol == "anthropic":
        blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
        blocks.extend({"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments} for c in calls)
        return {"role": "assistant", "content": blocks or text}
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": _arguments(c.arguments)},
            }
            for c in calls
        ]
    return message


def _arguments(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def translate(body: dict[str, Any], source: str, target: str) -> tuple[dict[str, Any], list[str]]:
    """The request in the target protocol, and the options it has no equivalent for (left out)."""
    if source == target:
        return body, []
    rest = {k: v for k, v in body.items() if k not in ("model", "messages", "system", "tools", "tool_choice")}
    options, unsupported = for_protocol(target, rest)
    out: dict[str, Any] = {"model": body.get("model")}
    out.update({k: v for k, v in options.items() if k in PROTOCOL_PARAMETERS[target]})
    if target == "anthropic":
        system, messages = _to_anthropic(body)
        if system:
            out["system"] = system
        out.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
    else:
        messages = _to_openai(body)
    out["messages"] = messages
    if body.get("tools"):
        out["tools"] = [_tool(target, t) for t in body["tools"]]
    if body.get("tool_choice") is not None:
        out["tool_choice"] = _tool_choice(target, body["tool_choice"])
    return out, unsupported


def _to_anthropic(body: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]]]:
    systems: list[str] = []
    out: list[dict[str, Any]] = []
    for message in body.get("messages") or []:
        role, content = message.get("role"), message.get("content")
        if role in ("system", "developer"):
            systems.append(to_text(content))
            continue
        if role == "tool":
            role = "user"
            blocks: Any = [
                {
                    "type": "tool_result",
                    "tool_use_id": message.get("tool_call_id"),
                    "content": to_text(content),
                }
            ]
        elif role == "assistant":
            calls = [
                ToolCall(
                    id=str(c.get("id")),
                    name=str((c.get("function") or {}).get("name")),
                    arguments=_parsed((c.get("function") or {}).get("arguments")),
                    raw_arguments=str((c.get("function") or {}).get("arguments")),
                )
                for c in message.get("tool_calls") or []
            ]
            blocks = _assistant("anthropic", to_text(content) if content else "", calls)["content"]
        else:
            role = "user"
            blocks = content if isinstance(content, str) else _text_blocks(content)
        if out and out[-1]["role"] == role:
            out[-1]["content"] = _as_blocks(out[-1]["content"]) + _as_blocks(blocks)
        else:
            out.append({"role": role, "content": blocks})
    if out and out[0]["role"] != "user":
        out.insert(0, {"role": "user", "content": "(conversation continues)"})
    return ("\n\n".join(systems) or None), out


def _to_openai(body: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if body.get("system"):
        out.append({"role": "system", "content": to_text(body["system"])})
    for message in body.get("messages") or []:
        role, content = message.get("role"), message.get("content")
        if isinstance(content, str):
            out.append({"role": role, "content": content})
            continue
        blocks = content if isinstance(content, list) else []
        text = "\n".join(str(b.get("text")) for b in _blocks(blocks, "text"))
        if role == "assistant":
            calls = [
                ToolCall(
                    id=str(b.get("id")), name=str(b.get("name")), arguments=b.get("input"), raw_arguments=""
                )
                for b in _blocks(blocks, "tool_use")
            ]
            out.append(_assistant("openai", text, calls))
            continue
        for result in _blocks(blocks, "tool_result"):
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": result.get("tool_use_id"),
                    "content": to_text(result.get("content")),
                }
            )
        if text or not _blocks(blocks, "tool_result"):
            out.append({"role": "user", "content": text})
    return out


def _parsed(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return {}
    return raw if raw is not None else {}


def _text_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, list):
        return [{"type": "text", "text": to_text(part)} for part in content]
    return [{"type": "text", "text": to_text(content)}]


def _as_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, list):
        return list(content)
    return [{"type": "text", "text": to_text(content)}]


def _tool(target: str, tool: dict[str, Any]) -> dict[str, Any]:
    if target == "anthropic":
        function = tool.get("function") or tool
        out = {"name": function.get("name"), "input_schema": function.get("parameters") or {"type": "object"}}
        if function.get("description"):
            out["description"] = function["description"]
        return out
    function = {"name": tool.get("name"), "parameters": tool.get("input_schema") or {"type": "object"}}
    if tool.get("description"):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def _tool_choice(target: str, choice: Any) -> Any:
    if target == "anthropic":
        if isinstance(choice, dict):
            return {"type": "tool", "name": (choice.get("function") or {}).get("name")}
        return {"type": {"required": "any"}.get(str(choice), str(choice))}
    kind = choice.get("type") if isinstance(choice, dict) else choice
    if kind == "tool":
        return {"type": "function", "function": {"name": choice.get("name")}}
    return {"any": "required"}.get(str(kind), str(kind))
