from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from retrace_server.schemas import Answer
from retrace_server.traces.schemas import SpanOut, SpanType, UtcTimestamp

SearchMode = Literal["hybrid", "lexical", "semantic"]
MAX_QUERY_CHARS = 2000


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: Annotated[str, Field(min_length=1, max_length=MAX_QUERY_CHARS, description="What to look for.")]
    limit: Annotated[int, Field(ge=1, le=100)] = 10
    trace_id: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    span_type: SpanType | None = None
    project_id: Annotated[str, Field(min_length=1, max_length=256)] | None = Field(
        None, description="Only spans of this project's traces."
    )
    since: UtcTimestamp | None = Field(None, description="Spans started at or after (ISO 8601).")
    until: UtcTimestamp | None = Field(None, description="Spans started before (ISO 8601).")
    mode: SearchMode = Field(
        "hybrid", description="hybrid (default) fuses lexical and vector ranks; lexical or semantic use one."
    )

    @field_validator("query")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @model_validator(mode="after")
    def _window(self) -> SearchRequest:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError("since must be before until")
        return self


class SearchHit(Answer):
    score: float = Field(description="0..1, best first")
    trace_id: str
    span: SpanOut = Field(description="The span as `GET /api/v1/traces/{id}` answers it")
    highlight: str = Field(description="An excerpt of the span's text around the matched words")


class SearchResults(Answer):
    data: list[SearchHit]
    mode: SearchMode = Field(
        description="The rankings that answered (lexical when the server has no embedder)"
    )
