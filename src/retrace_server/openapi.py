"""What routes declare for the OpenAPI document, in one place."""

from __future__ import annotations

from typing import Any

_ERROR_DESCRIPTIONS = {
    400: "Invalid body or parameters; the message names the field",
    401: "Missing or invalid credentials",
    402: "The plan's monthly limit is reached",
    404: "No such resource for this user",
    409: "Conflicts with the resource's current state",
    413: "Request body too large",
    415: "Unsupported media type",
    429: "Rate limit exceeded; see Retry-After",
    503: "The database is unavailable for a moment; retry after Retry-After",
}

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string", "description": "Human-readable message"}},
}


def error_responses(*codes: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each code with the error envelope; `descriptions` (`e404="..."`)
    replace the default wording of a code."""
    responses: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        description = descriptions.get(f"e{code}") or _ERROR_DESCRIPTIONS.get(code, "Error")
        responses[code] = {
            "description": description,
            "content": {"application/json": {"schema": ERROR_SCHEMA}},
        }
    return responses
