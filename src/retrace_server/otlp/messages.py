"""Chat messages and tool definitions of every convention, in the shape replay sends.

Retrace stores an LLM call's input as `{"messages": [...]}` in the OpenAI Chat Completions form
(system messages first, assistant `tool_calls` with ids, `tool` messages with `tool_call_id`), which
the replay turns into an OpenAI or Anthropic request; the output is the assistant's text, or the
assistant message when it calls tools.
"""

from __future__ import annotations

from typing import Any

import orjson

from retrace_server.otlp.values import as_text, parse_json

Message = dict[str, Any]


def _arguments_text(arguments: Any) -> str:
    """Tool-call arguments as the JSON text the OpenAI protocol carries."""
    if arguments is None:
        return "{}"
    if isinstance(arguments, str):
        return arguments
    return orjson.dumps(arguments).decode()


def tool_call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    return {
        "id": as_text(call_id) or "",
        "type": "function",
        "function": {"name": as_text(name) or "", "arguments": _arguments_text(arguments)},
    }


def _message(role: Any, content: Any, **extra: Any) -> Message:
    message: Message = {"role": str(role or "user"), "content": content if content is not None else ""}
    message.update({k: v for k, v in extra.items() if v not in (None, "", [])})
    return message


# OpenInference: llm.input_messages.N.message.* and llm.output_messages.N.message.*


def openinference_messages(items: Any) -> list[Message]:
    out = []
    for item in items if isinstance(items, list) else []:
        message = item.get("message") if isinstance(item, dict) else None
        if isinstance(message, dict):
            out.append(_openinference_message(message))
    return out


def _openinference_message(m: dict[str, Any]) -> Message:
    content = m.get("content")
    if content is None and isinstance(m.get("contents"), list):
        content = _openinference_contents(m["contents"])
    calls = [
        tool_call(
            (c.get("tool_call") or {}).get("id"),
            ((c.get("tool_call") or {}).get("function") or {}).get("name"),
            ((c.get("tool_call") or {}).get("function") or {}).get("arguments"),
        )
        for c in m.get("tool_calls") or []
        if isinstance(c, dict)
    ]
    if m.get("function_call_name"):
        calls.append(tool_call(None, m["function_call_name"], m.get("function_call_arguments_json")))
    return _message(
        m.get("role"), content, name=m.get("name"), tool_calls=calls, tool_call_id=m.get("tool_call_id")
    )


def _openinference_contents(contents: list[Any]) -> Any:
    parts: list[dict[str, Any]] = []
    for entry in contents:
        part = entry.get("message_content") if isinstance(entry, dict) else None
        if not isinstance(part, dict):
            continue
        kind = part.get("type") or "text"
        if kind == "image":
            url = ((part.get("image") or {}).get("image") or {}).get("url")
            parts.append({"type": "image_url", "image_url": {"url": url}})
        else:
            parts.append({"type": "text", "text": as_text(part.get("text")) or ""})
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


# OpenTelemetry GenAI: gen_ai.input.messages / gen_ai.output.messages (role + typed parts)


def genai_messages(value: Any) -> list[Message]:
    out: list[Message] = []
    for message in parse_json(value) if isinstance(parse_json(value), list) else []:
        if isinstance(message, dict):
            out.extend(_genai_message(message))
    return out


def genai_system(value: Any) -> Message | None:
    """`gen_ai.system_instructions` (parts, or text) as a system message."""
    parsed = parse_json(value)
    if isinstance(parsed, list):
        text = "".join(_part_text(p) for p in parsed if isinstance(p, dict))
    else:
        text = as_text(parsed) or ""
    return {"role": "system", "content": text} if text else None


def _part_text(part: dict[str, Any]) -> str:
    return as_text(part.get("content") if "content" in part else part.get("text")) or ""


def _genai_message(m: dict[str, Any]) -> list[Message]:
    role = m.get("role") or "user"
    parts = m.get("parts")
    if not isinstance(parts, list):
        # Older shapes carry `content` directly (and OpenAI-style tool calls).
        return [_message(role, m.get("content"), tool_calls=m.get("tool_calls"), tool_call_id=m.get("id"))]
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    responses: list[Message] = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "tool_call":
            calls.append(tool_call(part.get("id"), part.get("name"), part.get("arguments")))
        elif kind == "tool_call_response":
            result = part.get("response", part.get("result"))
            responses.append(_message("tool", as_text(result) or "", tool_call_id=as_text(part.get("id"))))
        elif kind in ("text", None):
            texts.append(_part_text(part))
    out: list[Message] = []
    if texts or calls or not responses:
        out.append(_message(role, "".join(texts), tool_calls=calls, name=m.get("name")))
    out.extend(responses)
    return out


# OpenLLMetry: gen_ai.prompt.N.* and gen_ai.completion.N.*


def openllmetry_messages(items: Any) -> list[Message]:
    out = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        calls = [
            tool_call(c.get("id"), c.get("name"), c.get("arguments"))
            for c in item.get("tool_calls") or []
            if isinstance(c, dict)
        ]
        function_call = item.get("function_call")
        if isinstance(function_call, dict):
            calls.append(tool_call(None, function_call.get("name"), function_call.get("arguments")))
        content = parse_json(item.get("content"))
        out.append(
            _message(
                item.get("role") or "user",
                content if isinstance(content, list) else item.get("content"),
                tool_calls=calls,
                tool_call_id=item.get("tool_call_id"),
            )
        )
    return out


# GenAI events (log records or span events): gen_ai.{system,user,assistant,tool}.message, gen_ai.choice

EVENT_ROLES = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}


def event_message(name: str, body: Any) -> Message:
    body = parse_json(body)
    if not isinstance(body, dict):
        body = {"content": body}
    role = body.get("role") or EVENT_ROLES.get(name, "user")
    calls = [_event_tool_call(c) for c in body.get("tool_calls") or [] if isinstance(c, dict)]
    return _message(role, body.get("content"), tool_calls=calls, tool_call_id=body.get("id"))


def choice_message(body: Any) -> Message:
    body = parse_json(body)
    message = parse_json(body.get("message")) if isinstance(body, dict) else None
    if not isinstance(message, dict):
        message = {"content": body.get("content") if isinstance(body, dict) else body}
    calls = [_event_tool_call(c) for c in message.get("tool_calls") or [] if isinstance(c, dict)]
    return _message(message.get("role") or "assistant", message.get("content"), tool_calls=calls)


def _event_tool_call(call: dict[str, Any]) -> dict[str, Any]:
    function = call["function"] if isinstance(call.get("function"), dict) else call
    return tool_call(call.get("id"), function.get("name"), function.get("arguments"))


# Request and response objects recorded whole (OpenInference input.value, Langfuse input)


def messages_of(value: Any) -> list[Message] | None:
    """The chat in a recorded request: a list of messages, or an object with `messages`."""
    value = parse_json(value)
    if isinstance(value, dict):
        value = value.get("messages")
    if isinstance(value, list) and value and all(isinstance(m, dict) and "role" in m for m in value):
        return [_chat_message(m) for m in value]
    return None


def _chat_message(m: dict[str, Any]) -> Message:
    out = dict(m)
    if out.get("content") is None:
        out["content"] = ""
    calls = out.get("tool_calls")
    if isinstance(calls, list):
        out["tool_calls"] = [_event_tool_call(c) for c in calls if isinstance(c, dict)]
    return out


def assistant_output(messages: list[Message]) -> Any:
    """What an LLM span records as output: the text, or the message itself when it calls tools."""
    if not messages:
        return None
    message = messages[0]
    if message.get("tool_calls"):
        return {
            "role": "assistant",
            "content": message.get("content") or "",
            "tool_calls": message["tool_calls"],
        }
    return message.get("content")


def response_output(value: Any) -> Any:
    """The output in a recorded response (an OpenAI completion, an Anthropic message, an assistant
    message); None when the value is none of them."""
    value = parse_json(value)
    if isinstance(value, list) and value and isinstance(value[0], dict) and "role" in value[0]:
        value = value[0]
    if not isinstance(value, dict):
        return None
    choices = value.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        message = choices[0].get("message")
        if isinstance(message, dict):
            return assistant_output([_chat_message({"role": "assistant", **message})])
        return choices[0].get("text")
    if value.get("type") == "message" and isinstance(value.get("content"), list):
        return _anthropic_output(value["content"])
    if value.get("role") == "assistant" and ("content" in value or "tool_calls" in value):
        return assistant_output([_chat_message(value)])
    return None


def _anthropic_output(blocks: list[Any]) -> Any:
    text = "".join(str(b.get("text", "")) for b in blocks if isinstance(b, dict) and b.get("type") == "text")
    calls = [
        tool_call(b.get("id"), b.get("name"), b.get("input"))
        for b in blocks
        if isinstance(b, dict) and b.get("type") == "tool_use"
    ]
    if calls:
        return {"role": "assistant", "content": text, "tool_calls": calls}
    return text


# Tool definitions


def tool_definition(value: Any) -> dict[str, Any] | None:
    """(name, description, parameters) of a tool in any provider's form, as an OpenAI tool."""
    value = parse_json(value)
    if not isinstance(value, dict):
        return None
    spec: dict[str, Any] = value["function"] if isinstance(value.get("function"), dict) else value
    name = spec.get("name")
    if not name:
        return None
    parameters = parse_json(spec.get("parameters") or spec.get("input_schema") or spec.get("inputSchema"))
    function: dict[str, Any] = {"name": str(name)}
    if spec.get("description"):
        function["description"] = spec["description"]
    function["parameters"] = parameters if isinstance(parameters, dict) else {"type": "object"}
    return {"type": "function", "function": function}


def provider_tools(tools: list[dict[str, Any]], provider: str | None) -> list[dict[str, Any]]:
    """OpenAI tools in the form the span's provider takes (Anthropic: name, description, input_schema)."""
    if provider not in ("anthropic", "claude"):
        return tools
    out = []
    for tool in tools:
        function = tool["function"]
        entry = {"name": function["name"], "input_schema": function["parameters"]}
        if function.get("description"):
            entry["description"] = function["description"]
        out.append(entry)
    return out
