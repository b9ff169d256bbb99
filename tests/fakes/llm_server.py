"""A small LLM HTTP server on 127.0.0.1 whose answers depend on the input.

It speaks the OpenAI Chat Completions protocol (`POST /v1/chat/completions`) and Anthropic's
Messages protocol (`POST /v1/messages`). Each answer quotes the last user message and carries a
digest of the model and the whole conversation, so a change anywhere in the input really changes
the answer. Requests are kept in `requests` for assertions.

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
import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAIL_MARKER = "FAIL_PROVIDER"
GATE_MARKER = "WAIT_FOR_GATE"
EMBEDDING_DIM = 64


def _text(content: Any) -> str:
    return content if isinstance(content, str) else json.dumps(content, sort_keys=True)


def answer_for(messages: list[dict[str, Any]], model: str, system: Any = None) -> str:
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), {"content": ""})
    text = _text(last_user.get("content"))
    conversation = json.dumps({"system": system, "messages": messages}, sort_keys=True)
    digest = hashlib.sha256(f"{model}|{conversation}".encode()).hexdigest()[:8]
    return f"[{model}] answer to '{text[:60]}' #{digest}"


def usage_for(messages: list[dict[str, Any]], answer: str) -> tuple[int, int]:
    """(input tokens, output tokens) as the fake counts them: words."""
    return sum(len(_text(m.get("content", "")).split()) for m in messages), len(answer.split())


class FakeLLMServer:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.gate = threading.Event()
        self._call_ids = itertools.count(1)
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
        failure = self._markers(body)
        if failure:
            return 400, {"error": {"message": failure, "type": "invalid_request_error", "code": None}}
        model = body.get("model", "gpt-4o-mini")
        messages = body.get("messages", [])
        forced = ((body.get("tool_choice") or {}).get("function") or {}).get("name")
        if isinstance(body.get("tool_choice"), dict) and forced:
            return 200, self._tool_call(model, messages, forced)
        text = answer_for(messages, model)
        prompt_tokens, completion_tokens = usage_for(messages, text)
        return 200, {
            "id": f"chatcmpl-{int(time.time() * 1000)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def _tool_call(self, model: str, messages: list[dict[str, Any]], tool: str) -> dict[str, Any]:
        last_user = next((m for m in reversed(messages) if m.get("role") == "user"), {"content": ""})
        arguments = json.dumps({"request": _text(last_user.get("content"))})
        prompt_tokens, completion_tokens = usage_for(messages, arguments)
        return {
            "id": f"chatcmpl-{int(time.time() * 1000)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": f"call_{next(self._call_ids)}",
                                "type": "function",
                                "function": {"name": tool, "arguments": arguments},
                            }
                        ],
                    },
                    "finish_reason": "tool_calls",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def anthropic_message(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        failure = self._markers(body)
        if failure:
            return 400, {"type": "error", "error": {"type": "invalid_request_error", "message": failure}}
        if not body.get("max_tokens"):
            return 400, {
                "type": "error",
                "error": {"type": "invalid_request_error", "message": "max_tokens: required"},
            }
        model = body.get("model", "claude-3-5-haiku-latest")
        messages = body.get("messages", [])
        text = answer_for(messages, model, body.get("system"))
        input_tokens, output_tokens = usage_for(messages, text)
        return 200, {
            "id": f"msg_{int(time.time() * 1000)}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
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

    def __enter__(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.gate.set()
        self._httpd.shutdown()
        self._httpd.server_close()
