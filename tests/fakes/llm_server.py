"""A small OpenAI-compatible HTTP server on 127.0.0.1 whose answers depend on the input.

It answers `POST /v1/chat/completions` (and `/chat/completions`) deterministically from the
last user message, so a change in the input really changes the answer. Requests are kept in
`requests` for assertions.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def answer_for(messages: list[dict[str, Any]], model: str) -> str:
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), {"content": ""})
    content = last_user.get("content")
    text = content if isinstance(content, str) else json.dumps(content, sort_keys=True)
    digest = hashlib.sha256(f"{model}|{text}".encode()).hexdigest()[:8]
    return f"[{model}] answer to '{text[:60]}' #{digest}"


class FakeLLMServer:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                owner.requests.append({"path": self.path, "body": body, "headers": dict(self.headers)})
                if self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(200, owner.chat_completion(body))
                else:
                    self._send(404, {"error": {"message": f"unknown path {self.path}"}})

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def chat_completion(self, body: dict[str, Any]) -> dict[str, Any]:
        model = body.get("model", "gpt-4o-mini")
        messages = body.get("messages", [])
        text = answer_for(messages, model)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        completion_tokens = len(text.split())
        return {
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

    def __enter__(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
