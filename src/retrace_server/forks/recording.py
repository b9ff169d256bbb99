"""The request each recorded LLM step sent, rebuilt from the trace.

Recorders keep different amounts of a call. A span whose input already holds the request
(messages with `tool_calls` and `tool_call_id`, Anthropic content blocks, `tools`, `system`...)
is taken as it is. The official Retrace SDK keeps less: each message's role and text (its first
1,000 characters; the leading system message and the newest messages, with `messages_omitted`
counting the others), tool schemas in `metadata.tool_schemas`, sampling in `metadata.sampling`,
each tool call as a `tool_call` span (parent: the LLM span, `metadata.tool_call_id`) and each
result as a `tool_result` span (`metadata.tool_call_id`). From those the assistant turns get
their tool calls back, tool results their ids, left-out messages come from earlier steps, and
text cut at 1,000 characters comes from the fuller tool spans.
"""

from __future__ import annotations

import ast
import bisect
import copy
import json
from dataclasses import dataclass, field
from typing import Any

from retrace_server.forks.inputs import to_text
from retrace_server.providers.parameters import FORK_PARAMETERS, for_protocol

# The official SDK keeps each recorded message's first MAX_MESSAGE_CHARS characters.
MAX_MESSAGE_CHARS = 1000
# The Messages API requires max_tokens; a step that recorded none gets this.
DEFAULT_MAX_TOKENS = 1024
# Sampling options some recorders keep at the top of a span's metadata.
_METADATA_SAMPLING = frozenset(
    {"temperature", "top_p", "top_k", "max_tokens", "max_completion_tokens", "stop", "seed"}
)
_ROLE_ALIASES = {"human": "user", "ai": "assistant", "model": "assistant", "bot": "assistant"}
TOOL_CALLS_PREFIX = "[tool calls] "


class RebuildError(Exception):
    """The recording does not hold enough to rebuild a valid request; the message says what is missing."""


@dataclass(frozen=True)
class RecordedCall:
    """A tool call an LLM step made, as its `tool_call` span recorded it."""

    id: str
    name: str
    arguments: Any
    parent_id: str | None


@dataclass(frozen=True)
class RecordedResult:
    content: Any
    is_error: bool


@dataclass
class StepRequest:
    """A step's request body in its protocol, and which LLM span's answer each message is."""

    protocol: str
    body: dict[str, Any]
    sources: list[str | None] = field(default_factory=list)


class TraceIndex:
    """The tool calls and results of a trace, by provider call id and by the LLM span that made them."""

    def __init__(self, spans: list[dict[str, Any]]) -> None:
        self.spans = spans
        self.position = {s["id"]: i for i, s in enumerate(spans)}
        self.llm_steps = [i for i, s in enumerate(spans) if s["span_type"] == "llm_call"]
        self.calls_by_parent: dict[str, list[RecordedCall]] = {}
        self.calls: dict[str, RecordedCall] = {}
        self.results: dict[str, RecordedResult] = {}
        # LLM step -> its whole recorded conversation (None: the recording cannot give it)
        self.conversations: dict[int, list[dict[str, Any]] | None] = {}
        call_outputs: dict[str, RecordedResult] = {}
        for span in spans:
            call_id = _call_id(span)
            if call_id is None:
                continue
            if span["span_type"] == "tool_call" and call_id not in self.calls:
                call = RecordedCall(
                    id=call_id, name=span.get("name") or "tool", arguments=span.get("input"),
                    parent_id=span.get("parent_id"),
                )  # fmt: skip
                self.calls[call_id] = call
                if call.parent_id:
                    self.calls_by_parent.setdefault(call.parent_id, []).append(call)
                if span.get("output") is not None:
                    call_outputs[call_id] = RecordedResult(span["output"], bool(span.get("error")))
            elif span["span_type"] == "tool_result" and call_id not in self.results:
                self.results[call_id] = RecordedResult(span.get("output"), bool(span.get("error")))
        # A `tool_result` span holds the text the model was sent; a tool span's output is the next best.
        for call_id, result in call_outputs.items():
            self.results.setdefault(call_id, result)
        self._calls_from_answers()

    def _calls_from_answers(self) -> None:
        """Recorders that keep the assistant's tool calls in the LLM span's output (OpenTelemetry
        instrumentations) run the tools in spans under the agent, not the LLM span: the output
        says which step made each call."""
        for i in self.llm_steps:
            span = self.spans[i]
            output = span.get("output")
            calls = output.get("tool_calls") if isinstance(output, dict) else None
            if not isinstance(calls, list) or span["id"] in self.calls_by_parent:
                continue
            made = []
            for entry in calls:
                function = entry.get("function") if isinstance(entry, dict) else None
                if not isinstance(function, dict) or not entry.get("id"):
                    continue
                call_id = str(entry["id"])
                recorded = self.calls.get(call_id)
                if recorded is not None and recorded.parent_id in self.calls_by_parent:
                    siblings = self.calls_by_parent[recorded.parent_id]
                    siblings.remove(recorded)
                    if not siblings:
                        del self.calls_by_parent[recorded.parent_id]
                arguments = (
                    recorded.arguments
                    if recorded is not None
                    else _parse_arguments(function.get("arguments"))
                )
                call = RecordedCall(
                    id=call_id,
                    name=str(function.get("name") or "tool"),
                    arguments=arguments,
                    parent_id=span["id"],
                )
                self.calls[call_id] = call
                made.append(call)
            if made:
                self.calls_by_parent[span["id"]] = made

    def llm_before(self, step: int) -> list[int]:
        return self.llm_steps[: bisect.bisect_left(self.llm_steps, step)]


def _parse_arguments(arguments: Any) -> Any:
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments


def _call_id(span: dict[str, Any]) -> str | None:
    value = (span.get("metadata") or {}).get("tool_call_id")
    return str(value) if value else None


def recorded_output_text(span: dict[str, Any]) -> str | None:
    """The answer's text as recorded, or None when the span recorded only a summary of tool calls."""
    text = to_text(span.get("output"))
    return None if text.startswith(TOOL_CALLS_PREFIX) else text


def rebuild(index: TraceIndex, step: int, protocol: str, *, span_input: Any = None) -> StepRequest:
    """The request of the LLM span at `step`, in `protocol` (the one it was recorded in)."""
    span = index.spans[step]
    raw = span.get("input") if span_input is None else span_input
    messages, options = _messages_and_options(raw)
    meta = span.get("metadata") or {}
    recorded: dict[str, Any] = {k: v for k, v in meta.items() if k in _METADATA_SAMPLING}
    for source in (meta.get("sampling"), meta.get("parameters"), options):
        if isinstance(source, dict):
            recorded.update(source)
    options_sent, _ = for_protocol(protocol, {k: v for k, v in recorded.items() if v is not None})
    system = options_sent.pop("system", None)
    body: dict[str, Any] = {"model": span.get("model"), **options_sent}
    if "tools" not in body and isinstance(meta.get("tool_schemas"), dict) and meta["tool_schemas"]:
        body["tools"] = _tools_from_schemas(protocol, meta["tool_schemas"])
    omitted = raw.get("messages_omitted") if isinstance(raw, dict) else None
    if isinstance(omitted, int) and omitted > 0:
        messages = _restore_omitted(index, step, messages, omitted)
    if protocol == "anthropic":
        system_parts = [system] if system else []
        kept = []
        for message in messages:
            if message["role"] in ("system", "developer"):
                system_parts.append(message["content"])
            else:
                kept.append(message)
        messages = kept
        if system_parts:
            body["system"] = (
                system_parts[0] if len(system_parts) == 1 else "\n\n".join(to_text(p) for p in system_parts)
            )
        body.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
        request = StepRequest(protocol, body)
        body["messages"] = _repair_anthropic(index, step, messages, request.sources)
    else:
        if system:
            messages = [{"role": "system", "content": system}, *messages]
        request = StepRequest(protocol, body)
        body["messages"] = _repair_openai(index, step, messages, request.sources)
    return request


def _messages_and_options(raw: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(the messages, the request fields beside them) of a recorded input in the shapes agents use."""
    if _is_chat(raw):
        return [_normalise(m) for m in raw], {}
    if not isinstance(raw, dict):
        return [{"role": "user", "content": to_text(raw)}], {}
    options = {k: v for k, v in raw.items() if k in FORK_PARAMETERS}
    for key in ("messages", "input"):
        if _is_chat(raw.get(key)):
            return [_normalise(m) for m in raw[key]], options
    for key in ("prompt", "input"):
        if isinstance(raw.get(key), str):
            return [{"role": "user", "content": raw[key]}], options
    rest = {k: v for k, v in raw.items() if k not in options and k != "messages_omitted"}
    return [{"role": "user", "content": to_text(rest)}], options


def _is_chat(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(m, dict) and ("role" in m or "type" in m) for m in value)
    )


def _normalise(message: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(message)
    role = str(out.get("role") or out.pop("type", None) or "user")
    out["role"] = _ROLE_ALIASES.get(role, role)
    out.setdefault("content", "")
    return out


def _tools_from_schemas(protocol: str, schemas: dict[str, Any]) -> list[dict[str, Any]]:
    if protocol == "anthropic":
        return [{"name": name, "input_schema": schema} for name, schema in schemas.items()]
    return [
        {"type": "function", "function": {"name": name, "parameters": schema}}
        for name, schema in schemas.items()
    ]


def _same_message(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.get("role") == b.get("role") and _fits(to_text(a.get("content")), b.get("content"))


def _fits(recorded: str, full: Any) -> bool:
    """Whether `recorded` is `full`, or its beginning cut at the recorder's limit."""
    text = full if isinstance(full, str) else to_text(full)
    if recorded == text:
        return True
    return len(recorded) >= MAX_MESSAGE_CHARS and text.startswith(recorded)


def _restore_omitted(
    index: TraceIndex, step: int, messages: list[dict[str, Any]], omitted: int
) -> list[dict[str, Any]]:
    """Puts back the messages the recorder left out, from the inputs of earlier steps.

    An agent's conversation grows: the messages left out at this step were sent at an earlier
    one, whose own input (restored the same way) starts the same conversation.
    """
    head = messages[:1] if messages and messages[0].get("role") == "system" else []
    tail = messages[len(head) :]
    start = len(head) + omitted  # where the kept tail sits in the whole conversation
    for earlier in reversed(index.llm_before(step)):
        previous = _whole_conversation(index, earlier)
        if previous is None or len(previous) < start:
            continue
        overlap = previous[start:]
        if len(overlap) > len(tail):
            continue
        if head and not (previous and _same_message(head[0], previous[0])):
            continue
        if all(_same_message(t, p) for t, p in zip(tail, overlap, strict=False)):
            return previous[:start] + tail
    raise RebuildError(
        f"the recording left out {omitted} earlier messages of this step (`messages_omitted`) "
        "and no earlier step holds them"
    )


def _whole_conversation(index: TraceIndex, step: int) -> list[dict[str, Any]] | None:
    """The recorded messages of an LLM step with the left-out ones put back (None when impossible).

    Steps are restored in order and kept, so a long trace costs one pass, never a deep recursion.
    """
    for i in [*index.llm_before(step), step]:
        if i in index.conversations:
            continue
        raw = index.spans[i].get("input")
        messages, _ = _messages_and_options(raw)
        omitted = raw.get("messages_omitted") if isinstance(raw, dict) else None
        if isinstance(omitted, int) and omitted > 0:
            try:
                index.conversations[i] = _restore_omitted(index, i, messages, omitted)
            except RebuildError:
                index.conversations[i] = None
        else:
            index.conversations[i] = messages
    return index.conversations[step]


def _source_by_text(index: TraceIndex, step: int, content: Any, used: set[str], after: int) -> str | None:
    """The earlier LLM span whose recorded answer is this assistant text."""
    text = to_text(content)
    if not text:
        return None
    for i in index.llm_before(step):
        span = index.spans[i]
        if i <= after or span["id"] in used:
            continue
        answer = recorded_output_text(span)
        if answer is not None and (answer == text or _fits(answer, text) or _fits(text, answer)):
            return str(span["id"])
    return None


def _result_text(result: RecordedResult) -> Any:
    content = result.content
    return content if isinstance(content, str | list) else json.dumps(content, ensure_ascii=False)


def _result_fits(recorded: Any, result: RecordedResult | None) -> bool:
    if result is None:
        return True  # nothing recorded to compare with
    recorded_text = to_text(recorded)
    if _fits(recorded_text, _result_text(result)):
        return True
    if not isinstance(result.content, str):
        try:
            return bool(json.loads(recorded_text) == result.content)
        except ValueError:
            return False
    return False


def _match_calls(
    index: TraceIndex, step: int, results: list[Any], used: set[str], after: int
) -> tuple[str, list[RecordedCall]] | None:
    """The earlier LLM span whose tool calls these results answer, and the call each answers."""
    for i in index.llm_before(step):
        span_id = str(index.spans[i]["id"])
        calls = index.calls_by_parent.get(span_id, [])
        if i <= after or span_id in used or len(calls) != len(results):
            continue
        free = list(calls)
        matched: list[RecordedCall] = []
        for content in results:
            call = next((c for c in free if _result_fits(content, index.results.get(c.id))), None)
            if call is None:
                break
            free.remove(call)
            matched.append(call)
        if len(matched) == len(results):
            return span_id, matched
    return None


def _openai_call(call: RecordedCall) -> dict[str, Any]:
    arguments = call.arguments
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, separators=(",", ":"), ensure_ascii=False)
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": arguments}}


def _full_result(recorded: Any, result: RecordedResult | None) -> Any:
    """The tool result the model was sent: the recorded message, or the fuller tool span it was cut from."""
    if result is not None and isinstance(recorded, str):
        full = _result_text(result)
        if isinstance(full, str) and full != recorded and _fits(recorded, full):
            return full
    return recorded


def _repair_openai(
    index: TraceIndex, step: int, messages: list[dict[str, Any]], sources: list[str | None]
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    used: set[str] = set()
    after = -1
    i = 0
    while i < len(messages):
        message = messages[i]
        role = message["role"]
        if role != "assistant":
            blocks = _literal_blocks(message["content"]) if isinstance(message.get("content"), str) else None
            if blocks is not None:
                message = {**message, "content": blocks}
            if role == "tool" and not message.get("tool_call_id"):
                raise RebuildError(
                    f"message {i} is a tool result and the trace records no tool call it answers"
                )
            out.append(message)
            sources.append(None)
            i += 1
            continue
        follow = i + 1
        while follow < len(messages) and messages[follow]["role"] == "tool":
            follow += 1
        tool_messages = messages[i + 1 : follow]
        source: str | None = None
        if message.get("tool_calls"):
            first = index.calls.get(str(message["tool_calls"][0].get("id")))
            source = first.parent_id if first else None
        elif tool_messages and all(str(t.get("tool_call_id")) in index.calls for t in tool_messages):
            # The results kept their ids and the assistant turn lost its calls: the ids name them.
            calls = [index.calls[str(t["tool_call_id"])] for t in tool_messages]
            source = calls[0].parent_id
            message = {
                **message,
                "content": message.get("content") or None,
                "tool_calls": [_openai_call(c) for c in calls],
            }
        elif tool_messages and not all(t.get("tool_call_id") for t in tool_messages):
            found = _match_calls(index, step, [t.get("content") for t in tool_messages], used, after)
            if found is None:
                raise RebuildError(
                    f"messages {i + 1}-{follow - 1} are tool results and the trace records no "
                    "tool calls they answer"
                )
            source, calls = found
            message = {
                **message,
                "content": message.get("content") or None,
                "tool_calls": [_openai_call(c) for c in calls],
            }
            tool_messages = [
                {
                    **t,
                    "tool_call_id": c.id,
                    "content": _full_result(t.get("content"), index.results.get(c.id)),
                }
                for t, c in zip(tool_messages, calls, strict=True)
            ]
        else:
            source = _source_by_text(index, step, message.get("content"), used, after)
        if source is not None:
            used.add(source)
            after = max(after, index.position.get(source, after))
        out.append(message)
        sources.append(source)
        out.extend(tool_messages)
        sources.extend([None] * len(tool_messages))
        i = follow
    return out


def _literal_blocks(text: str) -> list[dict[str, Any]] | None:
    """Content blocks a recorder stored as their Python text (`[{'type': 'text', ...}]`)."""
    stripped = text.strip()
    if not (stripped.startswith("[{") and stripped.endswith("}]")):
        return None
    try:
        value = ast.literal_eval(stripped)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if isinstance(value, list) and value and all(isinstance(b, dict) and "type" in b for b in value):
        return value
    return None


def _ids_in(text: str, ids: list[str]) -> list[str]:
    found = [(text.find(call_id), call_id) for call_id in ids if call_id in text]
    return [call_id for _, call_id in sorted(found)]


def _repair_anthropic(
    index: TraceIndex, step: int, messages: list[dict[str, Any]], sources: list[str | None]
) -> list[dict[str, Any]]:
    known = [
        call.id
        for i in index.llm_before(step)
        for call in index.calls_by_parent.get(str(index.spans[i]["id"]), [])
    ]
    out: list[dict[str, Any]] = []
    used: set[str] = set()
    after = -1
    for i, message in enumerate(messages):
        role, content = message["role"], message.get("content")
        if role == "tool":  # an OpenAI-shaped tool result in an Anthropic conversation
            role = "user"
            content = [
                {"type": "tool_result", "tool_use_id": message.get("tool_call_id"), "content": content}
            ]
        if isinstance(content, str):
            blocks = _literal_blocks(content)
            ids = _ids_in(content, known)
            if blocks is not None:
                content = blocks
            elif ids and role == "assistant":
                content = _tool_use_turn(index, ids)
            elif ids and "tool_result" in content:
                content = [_tool_result_block(call_id, index.results.get(call_id)) for call_id in ids]
            elif "tool_result" in content and "tool_use_id" in content:
                raise RebuildError(
                    f"message {i} holds tool results and the trace records no tool calls they answer"
                )
        source: str | None = None
        if role == "assistant":
            uses = (
                [b for b in content if isinstance(b, dict) and b.get("type") == "tool_use"]
                if isinstance(content, list)
                else []
            )
            if uses and str(uses[0].get("id")) in index.calls:
                source = index.calls[str(uses[0]["id"])].parent_id
            elif not uses:
                source = _source_by_text(index, step, content, used, after)
            if source is not None:
                used.add(source)
                after = max(after, index.position.get(source, after))
        out.append({**message, "role": role, "content": content})
        sources.append(source)
    return out


def _tool_use_turn(index: TraceIndex, ids: list[str]) -> list[dict[str, Any]]:
    """The assistant turn that made these tool calls: its text, then a tool_use block per call."""
    parent = index.calls[ids[0]].parent_id
    calls = index.calls_by_parent.get(parent or "", []) or [index.calls[i] for i in ids]
    blocks: list[dict[str, Any]] = []
    position = index.position.get(parent or "")
    text = recorded_output_text(index.spans[position]) if position is not None else None
    if text:
        blocks.append({"type": "text", "text": text})
    blocks.extend(
        {
            "type": "tool_use",
            "id": c.id,
            "name": c.name,
            "input": c.arguments if c.arguments is not None else {},
        }
        for c in calls
    )
    return blocks


def _tool_result_block(call_id: str, result: RecordedResult | None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id}
    if result is not None:
        block["content"] = _result_text(result)
        if result.is_error:
            block["is_error"] = True
    return block
