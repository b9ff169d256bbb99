"""Skill payloads."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from retrace_server.schemas import Answer
from retrace_server.skills.templates import template_variables

ErrorHandling = Literal["retry", "fail", "fallback"]
# Fields of a skill that a PATCH may change; each version stores all of them.
CONTENT_FIELDS = (
    "name",
    "description",
    "prompt_template",
    "tools",
    "max_iterations",
    "error_handling",
    "memory_scope",
    "scope",
    "tags",
    "is_public",
    "metadata",
)
NULLABLE_FIELDS = frozenset({"memory_scope", "scope"})


def _valid_template(value: str) -> str:
    template_variables(value)  # raises TemplateError, a ValueError, naming the position
    return value


def _clean_tag(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("a tag cannot be blank")
    if "," in value:
        raise ValueError("a tag cannot contain ',' (the list filter separates tags with commas)")
    return value


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


Name = Annotated[str, Field(min_length=1, max_length=256)]
Description = Annotated[str, Field(max_length=10_000)]
PromptTemplate = Annotated[str, Field(max_length=200_000), AfterValidator(_valid_template)]
ToolName = Annotated[str, Field(min_length=1, max_length=256)]
Tools = Annotated[list[ToolName | dict[str, Any]], Field(max_length=200)]
MaxIterations = Annotated[int, Field(ge=1, le=10_000)]
ScopeText = Annotated[str, Field(min_length=1, max_length=256)]
Tag = Annotated[str, Field(max_length=64), AfterValidator(_clean_tag)]
Tags = Annotated[list[Tag], Field(max_length=50), AfterValidator(_unique)]


class SkillCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Description = ""
    prompt_template: PromptTemplate = Field(
        description="Text with `{variables}`; `{{` and `}}` are literal braces"
    )
    tools: Tools = Field(default_factory=list, description="Tool names or JSON schemas")
    max_iterations: MaxIterations = 10
    error_handling: ErrorHandling = "fail"
    memory_scope: ScopeText | None = None
    scope: ScopeText | None = Field(None, description="Free text, e.g. project:checkout")
    tags: Tags = Field(default_factory=list)
    is_public: bool = Field(False, description="Other users may read the current version")
    metadata: dict[str, Any] = Field(default_factory=dict)


class SkillUpdate(BaseModel):
    """Only the given fields change; `memory_scope` and `scope` may be cleared with null."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    description: Description | None = None
    prompt_template: PromptTemplate | None = None
    tools: Tools | None = None
    max_iterations: MaxIterations | None = None
    error_handling: ErrorHandling | None = None
    memory_scope: ScopeText | None = None
    scope: ScopeText | None = None
    tags: Tags | None = None
    is_public: bool | None = None
    metadata: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _no_null_for_required(self) -> SkillUpdate:
        for field in self.model_fields_set - NULLABLE_FIELDS:
            if getattr(self, field) is None:
                raise ValueError(f"{field} cannot be null")
        return self

    def changes(self) -> dict[str, Any]:
        return {field: getattr(self, field) for field in self.model_fields_set}


class SkillContent(Answer):
    name: str
    description: str
    prompt_template: str
    tools: list[str | dict[str, Any]]
    max_iterations: int
    error_handling: ErrorHandling
    memory_scope: str | None
    scope: str | None
    tags: list[str]
    is_public: bool
    metadata: dict[str, Any]
    variables: list[str] = Field(description="The template's `{variables}`, in order of appearance")


class SkillDetail(SkillContent):
    """A skill as its current version stands."""

    id: str
    version: int
    created_at: datetime
    updated_at: datetime


class SkillVersionDetail(SkillContent):
    skill_id: str
    version: int
    changed_fields: list[str] = Field(
        description="The fields this version changed (all of them in version 1)"
    )
    created_at: datetime
