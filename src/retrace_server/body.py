"""Request bodies parsed straight from bytes by pydantic (fast, and errors name the field)."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from retrace_server.errors import InvalidInput, describe_validation_errors

ModelT = TypeVar("ModelT", bound=BaseModel)


async def parse_body(request: Request, model: type[ModelT], *, required: bool = True) -> ModelT:
    raw = await request.body()
    if not raw.strip():
        if required:
            raise InvalidInput("Request body is required (JSON object)")
        raw = b"{}"
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors()
        if errors and errors[0].get("type") == "json_invalid":
            raise InvalidInput(
                f"Invalid JSON body: {errors[0].get('ctx', {}).get('error', 'malformed')}"
            ) from None
        if errors and errors[0].get("type") == "model_type" and not errors[0].get("loc"):
            raise InvalidInput("Request body must be a JSON object") from None
        raise InvalidInput(describe_validation_errors(errors)) from None


def body_schema(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """`openapi_extra` documenting a body that the route parses itself."""
    return {
        "requestBody": {
            "required": required,
            "content": {
                "application/json": {
                    "schema": model.model_json_schema(ref_template="#/components/schemas/{model}")
                }
            },
        }
    }
