"""Tape payloads."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from retrace_server.tapes.redaction import MAX_CUSTOM_PATTERNS, MAX_PATTERN_LENGTH

Visibility = Literal["public", "unlisted"]
RedactPatterns = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=MAX_PATTERN_LENGTH)]],
    Field(max_length=MAX_CUSTOM_PATTERNS, description="Extra regular expressions whose matches are redacted"),
]


class TapeCreate(BaseModel):
    # A misspelt option (say `redcat: false`) must not silently publish secrets.
    model_config = ConfigDict(extra="forbid")

    trace_id: Annotated[str, Field(min_length=1, max_length=128, description="The trace to snapshot")]
    title: Annotated[str, Field(max_length=512)] | None = Field(
        None, description="Defaults to the trace name"
    )
    description: Annotated[str, Field(max_length=10_000)] | None = None
    visibility: Visibility = Field("public", description="unlisted tapes are reachable only by their link")
    redact: bool = Field(True, description="Replace API keys, tokens and private keys before publishing")
    redact_patterns: RedactPatterns = Field(default_factory=list)

    @model_validator(mode="after")
    def _patterns_need_redaction(self) -> TapeCreate:
        if self.redact_patterns and not self.redact:
            raise ValueError("redact_patterns cannot be combined with redact: false")
        return self


class TapePreviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    trace_id: Annotated[str, Field(min_length=1, max_length=128, description="The trace to check")]
    redact_patterns: RedactPatterns = Field(default_factory=list)


class TapeRedactionPreview(BaseModel):
    """What publishing the trace would redact; nothing is stored."""

    redacted_count: int = Field(description="Replacements in all")
    redactions: dict[str, int] = Field(
        description="Replacements per kind (`openai_key`, `secret_field`, `url_credentials`, `custom`, ...)"
    )
