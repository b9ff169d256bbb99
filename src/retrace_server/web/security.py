"""Headers that keep untrusted run content inert in a browser, added to every response."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# No inline script or style at all: a span output that smuggled markup into a page could run
# nothing. Page scripts are the site's own files.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]
# FastAPI's interactive API documentation loads its own scripts and is left as it is.
_OWN_POLICY_PATHS = ("/docs", "/redoc")
_STATIC_PREFIX = "/static/"
_STATIC_CACHE = (b"cache-control", b"public, max-age=31536000, immutable")
# Modules imported by other modules are named without a version: the browser revalidates them.
_STATIC_REVALIDATE = (b"cache-control", b"no-cache")


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(_OWN_POLICY_PATHS):
            await self.app(scope, receive, send)
            return
        # Static URLs carry their content hash (`?v=`), so a changed file is a new URL.
        static = scope["path"].startswith(_STATIC_PREFIX)
        versioned = b"v=" in scope.get("query_string", b"")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), *_HEADERS]
                if static and message["status"] in (200, 304):
                    headers.append(_STATIC_CACHE if versioned else _STATIC_REVALIDATE)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
