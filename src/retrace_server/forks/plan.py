"""The requests a server replay sends: each LLM step as recorded, changed only where the fork says.

Before any call, every LLM step from the fork point is rebuilt from the recording (see
`recording`), its provider and model chosen, and its conversation checked the way the API checks
it; the first step that cannot be replayed fails the fork. While the replay runs, each request
carries the new answers of the steps before it: the assistant turn a step answered with is
replaced by its new answer (its tool calls included), each tool result takes the id of the new
call it answers, and text quoting an old answer quotes the new one.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from retrace_server.forks import protocols
from retrace_server.forks.inputs import Substitutions, apply_modified_input
from retrace_server.forks.recording import RebuildError, StepRequest, TraceIndex, rebuild
from retrace_server.providers.base import ChatResult, ProviderConfigError, ToolCall
from retrace_server.providers.parameters import for_protocol
from retrace_server.providers.registry import provider_name

# Request fields that are the conversation and its tools, not options.
_CONVERSATION_FIELDS = frozenset({"model", "messages", "system", "tools"})


class StepError(Exception):
    """A step the replay cannot make, and why."""

    def __init__(self, message: str, *, index: int) -> None:
        super().__init__(message)
        self.index = index


@dataclass(frozen=True)
class ForkChanges:
    modified_input: Any
    has_modified_input: bool
    model: str | None
    parameters: dict[str, Any]


@dataclass
class LlmStep:
    index: int
    recorded: StepRequest
    provider: str  # the protocol the step is sent in
    model: str
    changes_apply: bool


@dataclass
class ReplayPlan:
    spans: list[dict[str, Any]]
    fork_index: int
    changes: ForkChanges
    index: TraceIndex = field(init=False)
    first_llm_index: int | None = field(init=False)
    steps: dict[int, LlmStep] = field(default_factory=dict)
    subs: Substitutions = field(default_factory=Substitutions)
    answers: dict[str, ChatResult] = field(default_factory=dict)  # LLM span id -> its new answer
    new_calls: dict[str, ToolCall] = field(default_factory=dict)  # recorded call id -> the new call
    diverged: dict[str, str] = field(default_factory=dict)  # LLM span id -> why its calls changed
    results: dict[str, Any] = field(default_factory=dict)  # recorded call id -> the result a fork gave

    def __post_init__(self) -> None:
        self.index = TraceIndex(self.spans)
        self.first_llm_index = next(
            (i for i in range(self.fork_index, len(self.spans)) if self.spans[i]["span_type"] == "llm_call"),
            None,
        )

    def check(self) -> list[tuple[int, str]]:
        """Plans every LLM step from the fork point: (index, provider) of each, or StepError."""
        planned = []
        for i in range(self.fork_index, len(self.spans)):
            if self.spans[i]["span_type"] == "llm_call":
                self.steps[i] = self._plan(i)
                planned.append((i, self.steps[i].provider))
        return planned

    def _plan(self, i: int) -> LlmStep:
        span = self.spans[i]
        changes_apply = i == self.first_llm_index
        try:
            recorded_provider = provider_name(
                provider=_str((span.get("metadata") or {}).get("provider")),
                model=span.get("model"),
                span_name=span.get("name"),
            )
            model = self.changes.model if changes_apply and self.changes.model else span.get("model")
            if not model:
                raise StepError("the span records no model; give `model` in the fork", index=i)
            # A new model picks its provider by name; otherwise the recorded provider stands.
            provider = (
                recorded_provider if model == span.get("model") else provider_name(provider=None, model=model)
            )
        except ProviderConfigError as exc:
            raise StepError(str(exc), index=i) from None
        span_input = span.get("input")
        if (
            i == self.fork_index
            and self.changes.has_modified_input
            and isinstance(self.changes.modified_input, dict)
        ):
            span_input = apply_modified_input(span_input, self.changes.modified_input)
            if "messages" in self.changes.modified_input and isinstance(span_input, dict):
                span_input.pop("messages_omitted", None)  # the fork gave the whole conversation
        try:
            recorded = rebuild(self.index, i, recorded_provider, span_input=span_input)
        except RebuildError as exc:
            raise StepError(f"the request cannot be rebuilt from the recording: {exc}", index=i) from None
        reason = protocols.problem(recorded_provider, recorded.body["messages"])
        if reason:
            raise StepError(f"the recorded request is not one the API accepts: {reason}", index=i)
        if changes_apply:
            _, unsupported = for_protocol(provider, self.changes.parameters)
            if unsupported:
                names = ", ".join(unsupported)
                raise StepError(
                    f"{provider} requests have no option {names}; remove it from `parameters`", index=i
                )
        return LlmStep(
            index=i, recorded=recorded, provider=provider, model=str(model), changes_apply=changes_apply
        )

    def request(self, i: int) -> dict[str, Any]:
        """The body to send for the LLM step at `i`, with the answers replayed so far."""
        step = self.steps[i]
        recorded = step.recorded
        body = copy.deepcopy(recorded.body)
        body["messages"] = self._carry_answers(i, self.subs.apply(body["messages"]), recorded.sources)
        if "system" in body:
            body["system"] = self.subs.apply(body["system"])
        if (
            i == self.fork_index
            and self.changes.has_modified_input
            and isinstance(self.changes.modified_input, str)
        ):
            text = self.changes.modified_input
            body["messages"], replaced = _replace_last_user_text(body["messages"], text)
            # Later steps carry the same conversation: they say the new text too.
            self.subs.add(replaced, text)
        body, _ = protocols.translate(body, recorded.protocol, step.provider)
        if step.changes_apply:
            body["model"] = step.model
            options, _ = for_protocol(step.provider, self.changes.parameters)
            body.update(options)
        reason = protocols.problem(step.provider, body["messages"])
        if reason:
            raise StepError(f"the replayed conversation is not one the API accepts: {reason}", index=i)
        return body

    def _carry_answers(
        self, i: int, messages: list[dict[str, Any]], sources: list[str | None]
    ) -> list[dict[str, Any]]:
        protocol = self.steps[i].recorded.protocol
        out = []
        for message, source in zip(messages, sources, strict=True):
            if source is not None and source in self.diverged:
                raise StepError(self.diverged[source], index=i)
            if source is not None and source in self.answers:
                out.append(protocols.turn(self.answers[source], protocol))
                continue
            if message.get("role") == "tool":
                message = {**message, **self._result_changes(str(message.get("tool_call_id")), i)}
            elif isinstance(message.get("content"), list):
                message = {
                    **message,
                    "content": [
                        {**b, **self._block_changes(str(b.get("tool_use_id")), i)}
                        if isinstance(b, dict) and b.get("type") == "tool_result"
                        else b
                        for b in message["content"]
                    ],
                }
            out.append(message)
        return out

    def _parent_diverged(self, call_id: str, i: int) -> None:
        call = self.index.calls.get(call_id)
        if call is not None and call.parent_id in self.diverged:
            raise StepError(self.diverged[call.parent_id], index=i)

    def _result_changes(self, call_id: str, i: int) -> dict[str, Any]:
        self._parent_diverged(call_id, i)
        changes: dict[str, Any] = {}
        if call_id in self.new_calls:
            changes["tool_call_id"] = self.new_calls[call_id].id
        if call_id in self.results:
            changes["content"] = _tool_content(self.results[call_id])
        return changes

    def _block_changes(self, call_id: str, i: int) -> dict[str, Any]:
        changes = self._result_changes(call_id, i)
        if "tool_call_id" in changes:
            changes["tool_use_id"] = changes.pop("tool_call_id")
        return changes

    def answered(self, i: int, result: ChatResult) -> Any:
        """Keeps the new answer of the LLM step at `i`; returns the output to record for it."""
        span = self.spans[i]
        self.answers[span["id"]] = result
        recorded_calls = self.index.calls_by_parent.get(span["id"], [])
        if [c.name for c in recorded_calls] == [c.name for c in result.tool_calls]:
            self.new_calls.update(
                {old.id: new for old, new in zip(recorded_calls, result.tool_calls, strict=True)}
            )
        else:
            before = ", ".join(c.name for c in recorded_calls) or "no tool"
            now = ", ".join(c.name for c in result.tool_calls) or "no tool"
            self.diverged[span["id"]] = (
                f"the new answer of step {i} calls {now} where the recording called {before}; the server "
                "never runs tools, so no recorded result answers it: replay the fork in your agent "
                "(`mode: agent`)"
            )
        original = span.get("output")
        output: Any
        if result.tool_calls and isinstance(original, dict | list):
            output = protocols.turn(result, result.protocol)
        else:
            output = protocols.summary(result)
        self.subs.add(original, output)
        return output

    def options_sent(self, body: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in body.items() if k not in _CONVERSATION_FIELDS}

    def tool_output_changed(self, i: int, output: Any) -> None:
        """A tool fork point's new output: later steps read it wherever the old one was."""
        span = self.spans[i]
        self.subs.add(span.get("output"), output)
        call_id = (span.get("metadata") or {}).get("tool_call_id")
        if call_id:
            self.results[str(call_id)] = output

    def replayed_span_changes(self, i: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """(field changes, metadata changes) of a replayed non-LLM span: the new call it now stands for."""
        span = self.spans[i]
        call_id = (span.get("metadata") or {}).get("tool_call_id")
        if not call_id:
            return {}, {}
        self._parent_diverged(str(call_id), i)
        new = self.new_calls.get(str(call_id))
        if new is None:
            return {}, {}
        fields = {"input": new.arguments} if span["span_type"] == "tool_call" else {}
        return fields, {"tool_call_id": new.id}


def _str(value: Any) -> str | None:
    return str(value) if value else None


def _tool_content(value: Any) -> Any:
    return value if isinstance(value, str | list) else json.dumps(value)


def _replace_last_user_text(messages: list[dict[str, Any]], text: str) -> tuple[list[dict[str, Any]], Any]:
    """The last user message with text (not only tool results) says `text` instead; and what it said."""
    out = list(messages)
    for index in range(len(out) - 1, -1, -1):
        message = out[index]
        content = message.get("content")
        if message.get("role") != "user":
            continue
        if isinstance(content, list) and not any(
            isinstance(b, dict) and b.get("type") == "text" for b in content
        ):
            continue
        out[index] = {**message, "content": text}
        return out, content
    return [*out, {"role": "user", "content": text}], None
