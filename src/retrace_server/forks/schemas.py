"""Fork payloads: what a fork changes, and the shapes of its answers."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ForkStatus = Literal["created", "running", "completed", "failed"]
Identifier = Annotated[str, Field(min_length=1, max_length=128)]


class ReplayParameters(BaseModel):
    """Request options sent to the provider as given: names of OpenAI Chat Completions or Anthropic
    Messages options (`retrace_server.providers.parameters`); any other name is refused."""

    model_config = ConfigDict(extra="allow")

    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    top_k: Annotated[int, Field(ge=1)] | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    seed: int | None = None
    stop: str | list[str] | None = None

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class Modifications(BaseModel):
    """What a replay changes at the fork point."""

    modified_input: Any = Field(
        None,
        description="A string replaces the last user message (or the tool's output at a tool span); "
        "an object is merged into the recorded input.",
    )
    model: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    parameters: ReplayParameters | None = None


class ForkCreate(Modifications):
    trace_id: Identifier
    fork_point_span_id: Identifier = Field(description="The span to branch at (alias: `span_id`).")
    name: Annotated[str, Field(max_length=512)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _span_id_alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and "fork_point_span_id" not in data and "span_id" in data:
            data = {**data, "fork_point_span_id": data["span_id"]}
            del data["span_id"]
        return data


class ReplayRequest(Modifications):
    """Fields given here override the fork's for this replay (and are kept in its history)."""

    mode: Literal["auto", "server", "agent"] = Field(
        "auto",
        description="`agent`: re-run by the live agent connected for the trace's name (409 when none is); "
        "`server`: replayed by the server; `auto`: the agent when one is connected, else the server.",
    )


class ClaimRequest(BaseModel):
    execution_id: Annotated[str, Field(min_length=1, max_length=36)]
