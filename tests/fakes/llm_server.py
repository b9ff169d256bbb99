"""A small LLM HTTP server on 127.0.0.1 that checks requests the way the real APIs do.

It speaks the OpenAI Chat Completions protocol (`POST /v1/chat/completions`) and Anthropic's
Messages protocol (`POST /v1/messages`), and refuses with the APIs' 400 what they refuse: a tool
message without `tool_call_id` or without the assistant `tool_calls` entry it answers, tool calls
left unanswered, a `tool_result` block without its `tool_use`, a role the API does not take, an
option the API does not know.

Its answers are a function of the whole request (model, system, messages with their tool calls
and results, tools, sampling): the same request always gets the same answer, tool-call ids
included, and a change anywhere changes it. When tools are offered, it calls the first one (by
name) that the conversation has not called yet, with every declared argument set to the last
capitalised word of the latest user text; once all have been called it answers in text. Requests
are kept in `requests` for assertions.

Markers in a message change its behaviour: `FAIL_PROVIDER` answers a 400 error, and
`WAIT_FOR_GATE` holds the answer until the test calls `gate.set()` (a slow provider, without
timing anything).

A chat completion whose `tool_choice` names a function (`{"type": "function", "function":
{"name": ...}}`) answers a call of that tool, with the last user message as its `request`
argument, as a model told to use a tool does.

`POST /v1/embeddings` answers hashed bag-of-words vectors: texts sharing words are close.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

FAIL_MARKER = "FAIL_PROVIDER"
GATE_MARKER = "WAIT_FOR_GATE"
EMBEDDING_DIM = 64

OPENAI_FIELDS = frozenset(
    {
        "model", "messages", "stream", "stream_options", "audio", "frequency_penalty", "function_call",
        "functions", "logit_bias", "logprobs", "max_completion_tokens", "max_tokens", "metadata",
        "modalities", "n", "parallel_tool_calls", "prediction", "presence_penalty", "prompt_cache_key",
        "reasoning_effort", "response_format", "safety_identifier", "seed", "service_tier", "stop",
        "store", "temperature", "tool_choice", "tools", "top_logprobs", "top_p", "user", "verbosity",
        # accepted by OpenAI-compatible servers such as vLLM
        "top_k", "min_p", "repetition_penalty",
    }
)  # fmt: skip
ANTHROPIC_FIELDS = frozenset(
    {
        "model", "messages", "max_tokens", "stream", "system", "temperature", "top_p", "top_k",
        "stop_sequences", "tools", "tool_choice", "metadata", "thinking", "service_tier", "container",
    }
)  # fmt: skip


class RequestRefused(Exception):
    """The request breaks a rule of the API; the message is the API's."""


def _text(content: Any) -> str:
    if content is None:
        return ""
    return content if isinstance(content, str) else json.dumps(content, sort_keys=True)


def _arguments(raw: Any) -> Any:
    try:
        return json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return raw


def _canonical_block(block: Any) -> Any:
    if not isinstance(block, dict):
        return block
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "text": block.get("text")}
    if kind == "tool_use":
        return {
            "type": "tool_use",
            "id": block.get("id"),
            "name": block.get("name"),
            "input": block.get("input"),
        }
    if kind == "tool_result":
        content = block.get("content")
        if isinstance(content, list):
            content = "".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
        return {
            "type": "tool_result",
            "tool_use_id": block.get("tool_use_id"),
            "content": content,
            "is_error": bool(block.get("is_error")),
        }
    return block


def _canonical_message(message: dict[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    out: dict[str, Any] = {
        "role": message.get("role"),
        "content": [_canonical_block(b) for b in content] if isinstance(content, list) else content or "",
    }
    if message.get("tool_calls"):
        out["tool_calls"] = [
            {
                "id": c.get("id"),
                "name": (c.get("function") or {}).get("name"),
                "arguments": _arguments((c.get("function") or {}).get("arguments")),
            }
            for c in message["tool_calls"]
        ]
    if message.get("tool_call_id"):
        out["tool_call_id"] = message["tool_call_id"]
    return out


def _tool_name(tool: dict[str, Any]) -> str:
    return str((tool.get("function") or tool).get("name"))


def canonical_request(body: dict[str, Any]) -> dict[str, Any]:
    """What the answer depends on: the request less transport details, in a stable form.

    Tools are taken in name order (their order in a recorded dict is not kept by every database)
    and tool-call arguments as JSON values; `max_completion_tokens` counts as `max_tokens`.
    """
    out = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
    out["messages"] = [_canonical_message(m) for m in body.get("messages") or []]
    if isinstance(out.get("system"), list):
        out["system"] = "".join(str(b.get("text", "")) for b in out["system"] if isinstance(b, dict))
    if out.get("tools"):
        out["tools"] = sorted(out["tools"], key=_tool_name)
    if "max_completion_tokens" in out:
        out["max_tokens"] = out.pop("max_completion_tokens")
    return out


def digest_of(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(canonical_request(body), sort_keys=True).encode()).hexdigest()[:8]


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, list):
            texts = [b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"]
            if not texts:
                continue
            return " ".join(texts)
        return _text(content)
    return ""


def answer_for(body: dict[str, Any]) -> str:
    """The text answer to this request (when it calls no tool)."""
    model = body.get("model", "gpt-4o-mini")
    return f"[{model}] answer to '{_last_user_text(body.get('messages') or [])[:60]}' #{digest_of(body)}"


def usage_for(body: dict[str, Any], answer: str) -> tuple[int, int]:
    """(input tokens, output tokens) as the fake counts them: words."""
    conversation = canonical_request(body)
    words = sum(len(_text(m.get("content")).split()) for m in conversation["messages"])
    return words + len(_text(conversation.get("system")).split()), len(answer.split())


def _called(messages: list[dict[str, Any]]) -> set[str]:
    names = set()
    for message in messages:
        for call in message.get("tool_calls") or []:
            names.add(str((call.get("function") or {}).get("name")))
        content = message.get("content")
        if isinstance(content, list):
            names.update(
                str(b.get("name")) for b in content if isinstance(b, dict) and b.get("type") == "tool_use"
            )
    return names


def next_tool_call(body: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(tool name, arguments) the model calls next, or None when it answers in text."""
    tools = body.get("tools") or []
    choice = body.get("tool_choice")
    if not tools or choice == "none" or (isinstance(choice, dict) and choice.get("type") == "none"):
        return None
    forced = _forced_tool(choice)
    called = _called(body.get("messages") or [])
    for tool in sorted(tools, key=_tool_name):
        name = _tool_name(tool)
        # A forced tool is called whenever asked, again and again (an agent stuck in a loop).
        if (forced is not None and name != forced) or (forced is None and name in called):
            continue
        schema = (
            (tool.get("function") or {}).get("parameters") if "function" in tool else tool.get("input_schema")
        )
        words = re.findall(r"\b[A-Z][a-zA-Z]+\b", _last_user_text(body.get("messages") or []))
        subject = words[-1] if words else "unknown"
        return name, {prop: subject for prop in sorted((schema or {}).get("properties") or {})}
    return None


def _forced_tool(choice: Any) -> str | None:
    """The tool a request's `tool_choice` forces: OpenAI's {"type": "function", "function": {"name"}}
    or Anthropic's {"type": "tool", "name"}."""
    if not isinstance(choice, dict):
        return None
    if choice.get("type") == "function":
        return (choice.get("function") or {}).get("name")
    if choice.get("type") == "tool":
        return choice.get("name")
    return None


def check_openai(body: dict[str, Any]) -> None:
    unknown = sorted(set(body) - OPENAI_FIELDS)
    if unknown:
        raise RequestRefused(f"Unrecognized request argument supplied: {unknown[0]}")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestRefused("Invalid 'messages': empty array. Expected an array with minimum length 1.")
    if body.get("tool_choice") is not None and not body.get("tools"):
        raise RequestRefused(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified."
        )
    for i, tool in enumerate(body.get("tools") or []):
        if tool.get("type") != "function" or not (tool.get("function") or {}).get("name"):
            raise RequestRefused(f"Missing required parameter: 'tools[{i}].function.name'.")
    pending: list[str] = []
    for i, message in enumerate(messages):
        role = message.get("role")
        if role not in ("system", "developer", "user", "assistant", "tool"):
            raise RequestRefused(
                f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'tool'."
            )
        if role == "tool":
            if not message.get("tool_call_id"):
                raise RequestRefused(f"Missing required parameter: 'messages[{i}].tool_call_id'.")
            if message["tool_call_id"] not in pending:
                raise RequestRefused(
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
                    "message with 'tool_calls'."
                )
            pending.remove(message["tool_call_id"])
            continue
        if pending:
            raise RequestRefused(
                "An assistant message with 'tool_calls' must be followed by tool messages responding to "
                "each 'tool_call_id'. The following tool_call_ids did not have response messages: "
                + ", ".join(pending)
            )
        pending = []
        for j, call in enumerate(message.get("tool_calls") or [] if role == "assistant" else []):
            if not isinstance((call.get("function") or {}).get("arguments"), str):
                raise RequestRefused(
                    f"Invalid type for 'messages[{i}].tool_calls[{j}].function.arguments': expected a string."
                )
            pending.append(str(call.get("id")))
    if pending:
        raise RequestRefused(
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
            "'tool_call_id'. The following tool_call_ids did not have response messages: "
            + ", ".join(pending)
        )


def check_anthropic(body: dict[str, Any]) -> None:
    unknown = sorted(set(body) - ANTHROPIC_FIELDS)
    if unknown:
        raise RequestRefused(f"{unknown[0]}: Extra inputs are not permitted")
    if not body.get("max_tokens"):
        raise RequestRefused("max_tokens: Field required")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestRefused("messages: at least one message is required")
    if messages[0].get("role") != "user":
        raise RequestRefused('messages: first message must use the "user" role')
    uses: list[str] = []
    for i, message in enumerate(messages):
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise RequestRefused(
                f"messages.{i}.role: Input should be 'user' or 'assistant' (got {role!r}). "
                "The Messages API "
                'accepts a top-level `system` parameter, not "system" as an input message role.'
            )
        content = message.get("content")
        blocks = content if isinstance(content, list) else []
        results = [b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"]
        for j, block in enumerate(blocks):
            if (
                isinstance(block, dict)
                and block.get("type") == "tool_result"
                and block.get("tool_use_id") not in uses
            ):
                raise RequestRefused(
                    f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                    f"{block.get('tool_use_id')}. Each `tool_result` block must have a corresponding "
                    "`tool_use` block in the previous message."
                )
        missing = [u for u in uses if u not in {b.get("tool_use_id") for b in results}]
        if missing:
            raise RequestRefused(
                f"messages.{i - 1}: `tool_use` ids were found without `tool_result` blocks immediately "
                f"after: {', '.join(missing)}. Each `tool_use` block must have a corresponding "
                "`tool_result` block in the next message."
            )
        uses = (
            [str(b.get("id")) for b in blocks if isinstance(b, dict) and b.get("type") == "tool_use"]
            if role == "assistant"
            else []
        )


class FakeLLMServer:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.gate = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                owner.requests.append({"path": self.path, "body": body, "headers": dict(self.headers)})
                path = self.path.split("?", 1)[0].rstrip("/")
                if path.endswith("/chat/completions"):
                    self._send(*owner.chat_completion(body))
                elif path.endswith("/messages"):
                    self._send(*owner.anthropic_message(body))
                elif path.endswith("/embeddings"):
                    self._send(*owner.embeddings(body))
                else:
                    self._send(404, {"error": {"message": f"unknown path {self.path}"}})

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                # The client may have given up waiting (a cancelled replay).
                with contextlib.suppress(BrokenPipeError):
                    self.wfile.write(raw)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def _markers(self, body: dict[str, Any]) -> str | None:
        """The failure mode asked for by a marker in the conversation, after holding at the gate."""
        conversation = json.dumps([body.get("system"), body.get("messages")])
        if GATE_MARKER in conversation:
            self.gate.wait(timeout=60)
        if FAIL_MARKER in conversation:
            return f"the model refused the input ({FAIL_MARKER})"
        return None

    def chat_completion(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        try:
            check_openai(body)
        except RequestRefused as exc:
            return 400, {"error": {"message": str(exc), "type": "invalid_request_error", "code": None}}
        failure = self._markers(body)
        if failure:
            return 400, {"error": {"message": failure, "type": "invalid_request_error", "code": None}}
        model = body.get("model", "gpt-4o-mini")
        call = next_tool_call(body)
        message: dict[str, Any]
        if call is None:
            text = answer_for(body)
            message = {"role": "assistant", "content": text}
        else:
            name, arguments = call
            text = f"{name}({json.dumps(arguments)})"
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": f"call_{digest_of(body)}",
                        "type": "function",
                        "function": {"name": name, "arguments": json.dumps(arguments, separators=(",", ":"))},
                    }
                ],
            }
        prompt_tokens, completion_tokens = usage_for(body, text)
        return 200, {
            "id": f"chatcmpl-{int(time.time() * 1000)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {"index": 0, "message": message, "finish_reason": "stop" if call is None else "tool_calls"}
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def anthropic_message(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        try:
            check_anthropic(body)
        except RequestRefused as exc:
            return 400, {"type": "error", "error": {"type": "invalid_request_error", "message": str(exc)}}
        failure = self._markers(body)
        if failure:
            return 400, {"type": "error", "error": {"type": "invalid_request_error", "message": failure}}
        model = body.get("model", "claude-3-5-haiku-latest")
        call = next_tool_call(body)
        if call is None:
            text = answer_for(body)
            content: list[dict[str, Any]] = [{"type": "text", "text": text}]
        else:
            name, arguments = call
            text = f"Calling {name} #{digest_of(body)}"
            content = [
                {"type": "text", "text": text},
                {"type": "tool_use", "id": f"toolu_{digest_of(body)}", "name": name, "input": arguments},
            ]
        input_tokens, output_tokens = usage_for(body, text)
        return 200, {
            "id": f"msg_{int(time.time() * 1000)}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": "end_turn" if call is None else "tool_use",
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        }

    def embeddings(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """OpenAI `/embeddings`: hashed bags of words, so texts sharing words have close vectors."""
        inputs = body.get("input", [])
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        data = []
        for index, text in enumerate(texts):
            vector = [0.0] * EMBEDDING_DIM
            for word in str(text).lower().split():
                vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % EMBEDDING_DIM] += 1.0
            data.append({"object": "embedding", "index": index, "embedding": vector})
        tokens = sum(len(str(t).split()) for t in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return 200, {"object": "list", "data": data, "model": body.get("model"), "usage": usage}

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.gate.set()
        self._httpd.shutdown()
        self._httpd.server_close()
