"""Failed page requests answer a page: sign-in for 401, an error page otherwise."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from retrace_server.web.templating import render

_NOT_PAGES = ("/api/", "/ws/", "/_/", "/static/")
_NOT_PAGE_PATHS = frozenset({"/health", "/openapi.json", "/docs", "/redoc"})
_TITLES = {
    400: "That request was not understood",
    403: "Not allowed",
    404: "Not found",
    405: "Not found",
    409: "Conflict",
    429: "Slow down",
    500: "Something went wrong",
    502: "A provider did not answer",
    503: "Unavailable for a moment",
}


def is_page_request(request: Request) -> bool:
    path = request.url.path
    if path.startswith(_NOT_PAGES) or path in _NOT_PAGE_PATHS:
        return False
    return "text/html" in request.headers.get("accept", "")


def sign_in_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/signin?next={quote(target, safe='/')}", status_code=303)


def error_page(request: Request, status: int, message: str, headers: Mapping[str, str]) -> Response | None:
    """`app.state.error_page`: HTML for browsers on the site's pages, None (JSON) for everything else."""
    if not is_page_request(request):
        return None
    if status == 401 and request.method == "GET":
        return sign_in_redirect(request)
    # An unknown route says nothing specific; a wrong method is, to a reader, a missing page.
    shown = 404 if status == 405 else status
    response = render(
        request,
        "error.html",
        status=shown,
        title=_TITLES.get(shown, "Error"),
        message=message if shown != 404 or message != "Not found" else "There is nothing at this address.",
        error_status=shown,
    )
    for name in ("Retry-After",):
        if name in headers:
            response.headers[name] = headers[name]
    return response
