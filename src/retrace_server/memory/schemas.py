from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

Scope = Annotated[str, Field(min_length=1, max_length=256)]
Category = Annotated[str, Field(min_length=1, max_length=64)]
MAX_CONTENT_CHARS = 20_000
KNOWN_CATEGORIES = ("fact", "preference", "correction", "pattern", "instruction")


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


class MemoryCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: Annotated[str, Field(min_length=1, max_length=MAX_CONTENT_CHARS)]
    scope: Scope = Field("global", description="Free text such as `global`, `session:abc`, `project:x`.")
    category: Category | None = Field(
        None, description=f"One of {', '.join(KNOWN_CATEGORIES)}, or a custom category."
    )
    key: Annotated[str, Field(min_length=1, max_length=256)] | None = Field(
        None,
        description=(
            "Unique per scope: storing the same key again updates the entry; fields the update "
            "leaves out (category, metadata, confidence, sources) keep their stored values."
        ),
    )
    metadata: dict[str, Any] | None = None
    confidence: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    source_trace_id: Annotated[str, Field(min_length=1, max_length=128)] | None = Field(
        None, description="One of your traces (400 otherwise)."
    )
    source_span_id: Annotated[str, Field(min_length=1, max_length=128)] | None = Field(
        None, description="A span of `source_trace_id`, when that is given (400 otherwise)."
    )

    _content = field_validator("content")(_not_blank)


class MemorySearch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: Annotated[str, Field(min_length=1, max_length=2000)]
    limit: Annotated[int, Field(ge=1, le=100)] = 10
    scope: Scope | None = None
    category: Category | None = None
    min_score: Annotated[float, Field(ge=0.0, le=1.0)] | None = None

    _query = field_validator("query")(_not_blank)


class MemoryFilters(BaseModel):
    scope: str | None = None
    category: str | None = None
    key: str | None = None
