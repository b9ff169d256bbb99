"""What routes declare for the OpenAPI document, in one place."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import fastapi.routing
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

_ERROR_DESCRIPTIONS = {
    400: "Invalid body or parameters; the message names the field",
    401: "Missing or invalid credentials",
    402: "The plan's monthly limit is reached",
    404: "No such resource for this user",
    409: "Conflicts with the resource's current state",
    413: "Request body too large",
    415: "Unsupported media type",
    429: "Rate limit exceeded, or too many failed authentications from this address; see Retry-After",
    502: "An upstream service refused the request or could not be reached",
    503: "The database is unavailable for a moment; retry after Retry-After",
}

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Error",
    "description": "Every failure answers this envelope",
    "required": ["error"],
    "properties": {"error": {"type": "string", "description": "Human-readable message"}},
}
ERROR_SCHEMA_NAME = "Error"
ERROR_REF: dict[str, Any] = {"$ref": f"#/components/schemas/{ERROR_SCHEMA_NAME}"}


def error_responses(*codes: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each code with the error envelope; `descriptions` (`e404="..."`)
    replace the default wording of a code."""
    responses: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        description = descriptions.get(f"e{code}") or _ERROR_DESCRIPTIONS.get(code, "Error")
        responses[code] = {
            "description": description,
            "content": {"application/json": {"schema": ERROR_REF}},
        }
    return responses


SecurityRequirements = list[dict[str, list[str]]]

# Dependency -> the OpenAPI security requirements of the operations that use it.
_DECLARED_SECURITY: dict[Callable[..., Any], SecurityRequirements] = {}


def declare_security(dependency: Callable[..., Any], requirements: SecurityRequirements) -> None:
    """Operations that use `dependency` (directly or through another) carry `requirements`.

    Declared rather than taken from FastAPI's security classes: those are dependencies of their
    own, resolved on every request only to be documented.
    """
    _DECLARED_SECURITY[dependency] = requirements


def api_routes(app: FastAPI) -> list[APIRoute]:
    """Every `APIRoute` of the app with its full path, however FastAPI nests included routers."""
    iter_route_contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    routes: Iterable[Any] = (
        (context.original_route for context in iter_route_contexts(app.routes))
        if iter_route_contexts is not None
        else app.routes
    )
    return [route for route in routes if isinstance(route, APIRoute)]


def _security_of(dependant: Dependant) -> SecurityRequirements | None:
    for dependency in dependant.dependencies:
        if dependency.call in _DECLARED_SECURITY:
            return _DECLARED_SECURITY[dependency.call]
        found = _security_of(dependency)
        if found is not None:
            return found
    return None


def install_openapi(app: FastAPI, *, security_schemes: dict[str, dict[str, Any]]) -> None:
    """The app's OpenAPI document, as the server really answers.

    - FastAPI advertises 422 on every route with parameters; this server turns validation errors
      into 400 (declared per route), so 422 and its schemas are left out.
    - Operations whose dependencies declared security requirements (`declare_security`) carry
      them, with `security_schemes`; those that need credentials answer 401 and 429 (bad
      credentials, rate limits) without each route saying so.
    - Every error answer is the envelope: every error response gets its schema (`Error`) here.
    - Request bodies that routes parse themselves (`body.body_schema`) carry their nested models
      in `$defs`: they move to `components.schemas`, where their `$ref`s point.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        components = document.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        components["securitySchemes"] = security_schemes
        paths = document.get("paths", {})
        for route in api_routes(app):
            requirements = _security_of(route.dependant)
            if requirements is None or route.path_format not in paths:
                continue
            for method in route.methods or ():
                operation = paths[route.path_format].get(method.lower())
                if operation is not None:
                    operation["security"] = requirements
                    for code, response in error_responses(401, 429).items():
                        operation.setdefault("responses", {}).setdefault(str(code), response)
        for operations in paths.values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                for code, response in responses.items():
                    if code[0] in "45":
                        response.setdefault("content", {"application/json": {"schema": ERROR_REF}})
                        if not response.get("description"):
                            response["description"] = _ERROR_DESCRIPTIONS.get(int(code), "Error")
                body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
                for name, definition in body.get("schema", {}).pop("$defs", {}).items():
                    schemas.setdefault(name, definition)
        for name in _VALIDATION_SCHEMAS:
            schemas.pop(name, None)
        schemas[ERROR_SCHEMA_NAME] = ERROR_SCHEMA
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
