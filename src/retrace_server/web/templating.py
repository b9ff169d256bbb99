"""Jinja2 pages: autoescaped (run content is untrusted), with versioned static URLs."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from retrace_server.jsonutil import dumps
from retrace_server.web.formatting import FILTERS
from retrace_server.web.nav import NAV, current_entry

WEB_DIR = Path(__file__).parent
STATIC_DIR = WEB_DIR / "static"


@lru_cache(maxsize=256)
def static_url(path: str) -> str:
    """`/static/<path>?v=<content hash>`: browsers may keep static files for a year."""
    digest = hashlib.sha256((STATIC_DIR / path).read_bytes()).hexdigest()[:12]
    return f"/static/{path}?v={digest}"


def json_for_script(value: Any) -> bytes:
    """JSON to embed in `<script type="application/json">`: `<` can only occur inside JSON
    strings, where `\\u003c` means the same, so no `</script>` or `<!--` can end the block."""
    raw = value if isinstance(value, bytes) else dumps(value)
    return raw.replace(b"<", b"\\u003c")


def pretty_json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()


def compact_json(value: Any) -> str:
    """One line of JSON, as text: the template escapes it like any other text."""
    return value if isinstance(value, str) else orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(WEB_DIR / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    env.filters["pretty_json"] = pretty_json
    env.filters["compact_json"] = compact_json
    env.globals["static"] = static_url
    return env


ENV = _environment()


def _page(request: Request, template: str, **context: Any) -> str:
    """The template rendered with what every page's layout reads (user, CSRF token, navigation)."""
    signed_in = getattr(request.state, "signed_in", None)
    return ENV.get_template(template).render(
        request=request,
        path=request.url.path,
        signed_in=signed_in,
        csrf_token=signed_in.csrf_token if signed_in else "",
        nav=NAV,
        current_nav=current_entry(request.url.path),
        **context,
    )


def render(request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    page = _page(request, template, **context)
    # Pages hold private run content: never kept by shared caches or the back-forward cache of others.
    return HTMLResponse(page, status_code=status, headers={"Cache-Control": "no-store"})


_DATA_SLOT = "<!--retrace:data-->"


def page_with_data(request: Request, template: str, *, data: bytes, **context: Any) -> Response:
    """A page whose script reads `data` (JSON) from a data block. The block is joined as bytes:
    a 10,000-span run is megabytes that need not pass through the template engine."""
    page = _page(request, template, data_slot=Markup(_DATA_SLOT), **context)
    head, _, tail = page.partition(_DATA_SLOT)
    body = b"".join(
        (
            head.encode(),
            b'<script type="application/json" id="run-data">',
            json_for_script(data),
            b"</script>",
            tail.encode(),
        )
    )
    return Response(body, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-store"})
