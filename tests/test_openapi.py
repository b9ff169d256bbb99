"""The OpenAPI document says what the server really does, and `/docs` works offline."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from retrace_server.apidocs import SWAGGER_UI_DIR
from retrace_server.app import create_app
from retrace_server.config import Settings
from retrace_server.openapi import api_routes
from tests.support.server import RunningServer

METHODS = ("get", "post", "put", "patch", "delete")
AUTHENTICATED: list[dict[str, list[str]]] = [{"ApiKey": []}, {"Bearer": []}]
# Open without credentials, optionally with them (they are then checked and counted).
CREDENTIALS_OPTIONAL = {("get", "/api/v1/tapes"), ("get", "/api/v1/tapes/{slug}")}
NO_CREDENTIALS = {
    ("get", "/health"),
    ("post", "/api/v1/billing/webhook"),
    ("post", "/api/v1/internal/logs"),
    ("get", "/api/public/health"),
}


@pytest.fixture(scope="module")
def app(make_settings: Callable[..., Settings]) -> FastAPI:
    return create_app(make_settings())


@pytest.fixture(scope="module")
def document(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield method, path, item[method]


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_the_document_covers_every_route(app: FastAPI, document: dict[str, Any]) -> None:
    operations = {(method, path) for method, path, _ in _operations(document)}
    routes = {
        (method.lower(), route.path)
        for route in api_routes(app)
        if route.include_in_schema
        for method in route.methods or ()
    }
    assert operations == routes
    for expected in [
        ("post", "/api/v1/traces"),
        ("post", "/api/v1/forks/{fork_id}/replay"),
        ("get", "/api/v1/skills/{skill_id}/versions/{version}"),
        ("post", "/api/v1/billing/webhook"),
        ("get", "/health"),
    ]:
        assert expected in operations
    # /docs and its assets are not API routes.
    assert not any(path.startswith("/docs") for _, path in operations)


def test_every_success_answer_has_a_schema(document: dict[str, Any]) -> None:
    missing = set()
    for method, path, operation in _operations(document):
        assert operation.get("summary"), f"{method} {path} has no summary"
        successes = {code: r for code, r in operation["responses"].items() if code.startswith("2")}
        assert successes, f"{method} {path} declares no success answer"
        for code, response in successes.items():
            if code == "204":
                assert "content" not in response, f"{method} {path}: a 204 has no body"
                continue
            schema = response.get("content", {}).get("application/json", {}).get("schema")
            if not schema or schema == {}:
                missing.add((method, path))
    assert missing == set(), f"routes without a success schema: {sorted(missing)}"


def test_errors_are_the_envelope_and_never_422(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert schemas["Error"]["required"] == ["error"]
    assert schemas["Error"]["properties"] == {
        "error": {"type": "string", "description": "Human-readable message"}
    }
    for method, path, operation in _operations(document):
        responses = operation["responses"]
        assert "422" not in responses, f"{method} {path} advertises 422; the server answers 400"
        errors = {code: r for code, r in responses.items() if code[0] in "45"}
        for code, response in errors.items():
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}, f"{method} {path} {code}"
            assert response["description"], f"{method} {path} {code}"
        has_parameters = bool(operation.get("parameters") or operation.get("requestBody"))
        if has_parameters and path != "/api/v1/billing/webhook":
            # Bad parameters or bodies answer 400; every route that takes any says so ...
            validated = [p for p in operation.get("parameters", []) if p["in"] != "path"]
            if validated or operation.get("requestBody"):
                assert "400" in errors, f"{method} {path} takes input but does not declare 400"
        if operation.get("requestBody"):
            assert {"413", "415"} <= set(errors), f"{method} {path} takes a body: 413 and 415 apply"
        if (method, path) not in NO_CREDENTIALS:
            assert {"401", "429"} <= set(errors), f"{method} {path}: 401 and 429 apply"


def test_security_schemes_let_try_it_out_authenticate(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "x-retrace-key",
        "description": schemes["ApiKey"]["description"],
    }
    assert schemes["Bearer"]["type"] == "http"
    assert schemes["Bearer"]["scheme"] == "bearer"
    assert schemes["Bearer"]["bearerFormat"] == "JWT"
    for method, path, operation in _operations(document):
        security = operation.get("security")
        if (method, path) in NO_CREDENTIALS:
            assert not security, f"{method} {path} needs no credentials"
        elif (method, path) in CREDENTIALS_OPTIONAL:
            assert security is not None and {} in security, f"{method} {path}: credentials are optional"
            assert [s for s in security if s] == AUTHENTICATED
        else:
            assert security == AUTHENTICATED, f"{method} {path}: {security}"


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for ref in set(_refs(document)):
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in schemas, f"unresolved {ref}"


def test_docs_are_served_from_the_package(server: RunningServer) -> None:
    page = httpx.get(f"{server.url}/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources, page.text
    # Nothing from another host: the page works offline and behind strict proxies.
    assert all(s.startswith("/") for s in sources), sources
    assert '"url": "/openapi.json"' in page.text or "url: '/openapi.json'" in page.text
    assert '"validatorUrl": null' in page.text
    for source in sources:
        asset = httpx.get(f"{server.url}{source}")
        assert asset.status_code == 200, source
        assert asset.content == (SWAGGER_UI_DIR / Path(source).name).read_bytes()
    assert httpx.get(f"{server.url}/docs/oauth2-redirect").status_code == 200
    assert httpx.get(f"{server.url}/redoc").status_code == 404
    missing = httpx.get(f"{server.url}/docs/assets/nothing.js")
    assert missing.status_code == 404 and "error" in missing.json()


def test_vendored_assets_are_the_pinned_files() -> None:
    pinned = dict(
        re.findall(r"^\| (\S+) \| ([0-9a-f]{64}) \|$", (SWAGGER_UI_DIR / "VERSION.md").read_text(), re.M)
    )
    assert set(pinned) == {"swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"}
    for name, digest in pinned.items():
        assert hashlib.sha256((SWAGGER_UI_DIR / name).read_bytes()).hexdigest() == digest, name
    assert "Apache License" in (SWAGGER_UI_DIR / "LICENSE").read_text()
