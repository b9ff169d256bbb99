"""A small Dodo Payments-compatible HTTP server on 127.0.0.1, for the official SDK to talk to.

It answers the two calls the billing routes make (`POST /checkouts` and
`POST /customers/{id}/customer-portal/session`), checks the bearer key, and keeps every
request in `requests` for assertions.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

_PORTAL_PATH = re.compile(r"^/customers/(?P<customer>[^/]+)/customer-portal/session$")


class FakeDodoServer:
    def __init__(self, *, api_key: str) -> None:
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                url = urlsplit(self.path)
                headers = {k.lower(): v for k, v in self.headers.items()}
                record = {
                    "path": url.path,
                    "query": {k: v[0] for k, v in parse_qs(url.query).items()},
                    "body": json.loads(raw) if raw else None,
                    "headers": headers,
                }
                owner.requests.append(record)
                if headers.get("authorization") != f"Bearer {owner.api_key}":
                    self._send(401, {"code": "UNAUTHORIZED", "message": "Invalid API key"})
                    return
                portal = _PORTAL_PATH.match(url.path)
                if url.path == "/checkouts":
                    session_id = f"cks_{uuid.uuid4().hex[:16]}"
                    self._send(
                        200,
                        {
                            "session_id": session_id,
                            "checkout_url": f"https://checkout.dodo.test/session/{session_id}",
                        },
                    )
                elif portal:
                    self._send(200, {"link": f"https://portal.dodo.test/{portal['customer']}"})
                else:
                    self._send(404, {"code": "NOT_FOUND", "message": f"unknown path {url.path}"})

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def start(self) -> FakeDodoServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
