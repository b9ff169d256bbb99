"""One OTLP span as a Retrace span, and what it says about its trace.

The conventions read, in order of precedence where they overlap: Langfuse (`langfuse.*`),
OpenInference (`openinference.span.kind`, `llm.*`, `input.value`...), the OpenTelemetry GenAI
semantic conventions, current and older (`gen_ai.*`), and OpenLLMetry (`gen_ai.prompt.N.*`,
`traceloop.*`). Every attribute the mapping does not use is kept in `metadata.attributes`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from retrace_server.otlp import messages as msg
from retrace_server.otlp.values import (
    Attributes,
    any_value,
    as_float,
    as_int,
    as_text,
    attributes,
    clean,
    parse_json,
    pop_first,
    unflatten,
)

MAX_NAME = 512
MAX_MODEL = 256
MAX_AGENT = 256

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# W3C flags in Span.flags: bit 8 says whether bit 9 (the parent is in another process) is known.
_PARENT_IS_REMOTE = 0x300
_SPAN_KINDS = {0: None, 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}

# Kinds of work, from each convention's own vocabulary.
LLM, TOOL, AGENT, CHAIN, EMBEDDING, OTHER = "llm", "tool", "agent", "chain", "embedding", "other"
_LANGFUSE_TYPES = {
    "generation": LLM,
    "tool": TOOL,
    "agent": AGENT,
    "chain": CHAIN,
    "embedding": EMBEDDING,
}
_OPENINFERENCE_KINDS = {"LLM": LLM, "TOOL": TOOL, "AGENT": AGENT, "CHAIN": CHAIN, "EMBEDDING": EMBEDDING}
_GENAI_OPERATIONS = {
    "chat": LLM,
    "text_completion": LLM,
    "completion": LLM,
    "generate_content": LLM,
    "generate": LLM,
    "embeddings": EMBEDDING,
    "execute_tool": TOOL,
    "invoke_agent": AGENT,
    "create_agent": AGENT,
}
_TRACELOOP_KINDS = {"workflow": CHAIN, "task": CHAIN, "agent": AGENT, "tool": TOOL}
_LLM_REQUEST_TYPES = {"chat": LLM, "completion": LLM, "embedding": EMBEDDING}
SPAN_TYPES = {LLM: "llm_call", TOOL: "tool_call"}

# Indexed attribute families, gathered in one pass over a span's attributes.
_GROUPS = (
    "llm.input_messages.",
    "llm.output_messages.",
    "llm.tools.",
    "llm.prompts.",
    "llm.choices.",
    "gen_ai.prompt.",
    "gen_ai.completion.",
    "llm.request.functions.",
    "langfuse.observation.metadata.",
    "langfuse.trace.metadata.",
    "traceloop.association.properties.",
)

# Request options of the GenAI conventions (OpenLLMetry uses them too), by the name a provider takes.
_GENAI_PARAMETERS = {
    "gen_ai.request.temperature": "temperature",
    "gen_ai.request.top_p": "top_p",
    "gen_ai.request.top_k": "top_k",
    "gen_ai.request.max_tokens": "max_tokens",
    "gen_ai.request.seed": "seed",
    "gen_ai.openai.request.seed": "seed",
    "gen_ai.request.stop_sequences": "stop",
    "gen_ai.request.frequency_penalty": "frequency_penalty",
    "gen_ai.request.presence_penalty": "presence_penalty",
    "gen_ai.request.choice.count": "n",
    # OpenLLMetry's own (its spans always carry gen_ai.* attributes too).
    "llm.top_k": "top_k",
    "llm.frequency_penalty": "frequency_penalty",
    "llm.presence_penalty": "presence_penalty",
}
_PARAMETER_NAMESPACES = frozenset({"gen_ai"})
_RESPONSE_FORMAT_KEYS = ("gen_ai.openai.request.response_format", "gen_ai.output.type")
# What a recorded request holds besides its options; never replayed as a parameter.
_NOT_PARAMETERS = frozenset(
    {"model", "messages", "system", "stream", "stream_options", "extra_headers", "extra_query", "timeout"}
)
SAMPLING_KEYS = ("temperature", "top_p", "top_k", "seed", "max_tokens")

_PROVIDER_ALIASES = {
    "azure.ai.openai": "azure",
    "az.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "az.ai.inference": "azure",
    "aws.bedrock": "bedrock",
    "gcp.gemini": "gemini",
    "gcp.vertex_ai": "vertex_ai",
    "gcp.gen_ai": "google",
    "mistral_ai": "mistral",
    "x_ai": "xai",
    "ibm.watsonx.ai": "watsonx",
}

_PLAIN_ANSWER = {"0.message.role", "0.message.content"}
_MESSAGE_EVENTS = frozenset({*msg.EVENT_ROLES, "gen_ai.choice"})


class InvalidSpan(ValueError):
    """A span that cannot be stored; the message names the field."""


@dataclass(slots=True)
class MappedSpan:
    trace_id: str
    values: dict[str, Any]
    is_root: bool
    trace_fields: dict[str, Any] = field(default_factory=dict)
    """Trace fields the span's attributes set (`langfuse.trace.*`, sessions, users, tags)."""


def hex_id(raw: bytes, size: int, name: str) -> str:
    if len(raw) != size or not any(raw):
        raise InvalidSpan(f"{name} must be {size} bytes ({size * 2} hex characters), not all zero")
    return raw.hex()


def timestamp(nanos: int) -> datetime:
    return _EPOCH + timedelta(microseconds=nanos // 1000)


def iso_time(nanos: int) -> str:
    return timestamp(nanos).isoformat().replace("+00:00", "Z")


def provider_name(value: Any) -> str | None:
    text = as_text(value)
    if not text:
        return None
    key = text.strip().lower()
    return _PROVIDER_ALIASES.get(key, key)


def map_span(span: Span, *, scope_name: str, scope_version: str) -> MappedSpan:
    trace_id = hex_id(span.trace_id, 16, "traceId")
    span_id = hex_id(span.span_id, 8, "spanId")
    parent_id = hex_id(span.parent_span_id, 8, "parentSpanId") if span.parent_span_id else None
    if parent_id == span_id:
        raise InvalidSpan("parentSpanId must differ from spanId")
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    if not start:
        raise InvalidSpan("startTimeUnixNano is required")
    started_at = timestamp(start)
    ended_at = timestamp(max(end, start)) if end else None
    remote_parent = parent_id is not None and span.flags & _PARENT_IS_REMOTE == _PARENT_IS_REMOTE

    attrs, groups, namespaces = _gather(span.attributes)
    events = span.events
    view = _SpanView(attrs, groups, namespaces, [(e.name, e) for e in events] if events else [])
    kind, category = view.classify()

    values: dict[str, Any] = {
        "id": span_id,
        "parent_id": None if remote_parent else parent_id,
        "started_at": started_at,
        "ended_at": ended_at,
        "duration_ms": max(0, end - start) // 1_000_000 if ended_at else None,
    }
    otel: dict[str, Any] = {"span_kind": _SPAN_KINDS.get(span.kind), "scope": clean(scope_name) or None}
    if scope_version:
        otel["scope_version"] = clean(scope_version)
    if remote_parent:
        otel["remote_parent_id"] = parent_id
    if span.trace_state:
        otel["trace_state"] = clean(span.trace_state)
    metadata: dict[str, Any] = view.user_metadata()
    if kind:
        metadata["kind"] = kind

    name = clean(span.name)
    if category in (LLM, EMBEDDING):
        view.model_call(values, metadata, chat=category == LLM)
    elif category == TOOL:
        tool_name = view.tool_call(values, metadata)
        if tool_name and tool_name != name:
            otel["name"], name = name, tool_name
    else:
        view.step(values, metadata)
    if "gen_ai" in namespaces or "agent" in namespaces:
        agent = as_text(pop_first(attrs, "gen_ai.agent.id", "gen_ai.agent.name", "agent.name"))
        if agent:
            values["agent_id"] = agent[:MAX_AGENT]

    error = view.error(span.status)
    span_type = SPAN_TYPES.get(category, "action")
    if error is not None:
        values["error"] = error
        if category not in SPAN_TYPES:
            span_type = "error"
    values["span_type"] = span_type
    values["name"] = (name or kind or span_type)[:MAX_NAME]

    trace_fields = view.trace_facts()
    other_events = view.other_events() if events else None
    if other_events:
        otel["events"] = other_events
    if span.links:
        otel["links"] = [
            {
                "trace_id": link.trace_id.hex(),
                "span_id": link.span_id.hex(),
                "attributes": attributes(link.attributes),
            }
            for link in span.links
        ]
    metadata["otel"] = {k: v for k, v in otel.items() if v is not None}
    leftover = view.leftover()
    if leftover:
        metadata["attributes"] = leftover
    values["metadata"] = metadata
    return MappedSpan(
        trace_id=trace_id,
        values=values,
        is_root=parent_id is None or remote_parent,
        trace_fields=trace_fields,
    )


def _gather(key_values: Iterable[KeyValue]) -> tuple[Attributes, dict[str, dict[str, Any]], set[str]]:
    """(plain attributes, indexed families by prefix, the first segments of all names) in one pass."""
    plain: Attributes = {}
    groups: dict[str, dict[str, Any]] = {}
    namespaces: set[str] = set()
    known = _KEY_INFO
    for kv in key_values:
        raw = kv.value
        # A non-empty string_value can only be the string of the oneof: most attributes are read
        # without asking which member is set.
        value = raw.string_value
        if not value:
            value = any_value(raw)
        elif "\x00" in value:
            value = value.replace("\x00", "\ufffd")
        key = kv.key
        info = known.get(key)
        if info is None:
            info = _key_info(key)
        name, prefix, rest, namespace = info
        namespaces.add(namespace)
        if prefix is None:
            plain[name] = value
        elif prefix in groups:
            groups[prefix][rest] = value
        else:
            groups[prefix] = {rest: value}
    return plain, groups, namespaces


_KEY_INFO: dict[str, tuple[str, str | None, str, str]] = {}


def _key_info(key: str) -> tuple[str, str | None, str, str]:
    """(name without NUL characters, indexed family prefix, the rest of the name after it, first
    segment) of an attribute name; names repeat from span to span, so this is cached."""
    name = clean(key)
    prefix = next((p for p in _GROUPS if name.startswith(p)), None)
    info = (name, prefix, name[len(prefix) :] if prefix else name, name.partition(".")[0])
    if len(_KEY_INFO) >= 50_000:
        _KEY_INFO.clear()
    _KEY_INFO[key] = info
    return info


def _unflatten_messages(flat: dict[str, Any]) -> Any:
    """OpenInference's `N.message.role` / `N.message.content` lists, the common case read directly;
    anything deeper (tool calls, content parts) through the general unflattening."""
    messages: dict[int, dict[str, Any]] = {}
    for key, value in flat.items():
        index, _, field = key.partition(".message.")
        if not index.isdigit() or "." in field:
            return unflatten(flat)
        messages.setdefault(int(index), {})[field] = value
    return [{"message": messages[i]} for i in sorted(messages)]


def _structured(value: Any, mime_type: Any = None) -> Any:
    """An input or output value: JSON text as its value unless declared plain text."""
    if isinstance(value, str) and mime_type not in (None, "application/json"):
        return value
    value = parse_json(value)
    # Function-call recorders (Langfuse's @observe, Traceloop) wrap arguments as args/kwargs.
    if isinstance(value, dict) and value.keys() == {"args", "kwargs"} and not value["args"]:
        return value["kwargs"]
    return value


def _pop_text(attrs: Attributes, key: str) -> str | None:
    """`as_text` of an attribute, consumed."""
    value = attrs.pop(key, None)
    return None if value is None else as_text(value)


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return value == value and value not in (float("inf"), float("-inf"))
    if isinstance(value, str):
        return value.strip().lower() not in ("infinity", "-infinity", "inf", "-inf", "nan")
    return value is not None


class _SpanView:
    """A span's attributes while they are mapped: each reader consumes what it uses."""

    def __init__(
        self,
        attrs: Attributes,
        groups: dict[str, dict[str, Any]],
        namespaces: set[str],
        events: list[tuple[str, Any]],
    ):
        self.attrs = attrs
        self.groups = groups
        # Readers of a convention skip their work when none of its attributes are present.
        self.namespaces = namespaces
        self.events = events  # (name, event); names are cleaned where stored
        self._used_events: set[int] = set()

    # What the span is

    def classify(self) -> tuple[str | None, str]:
        """(the span's kind in its own convention, the kind of work it maps to)."""
        a, namespaces = self.attrs, self.namespaces
        langfuse_type = _pop_text(a, "langfuse.observation.type") if "langfuse" in namespaces else None
        openinference = _pop_text(a, "openinference.span.kind") if "openinference" in namespaces else None
        operation = _pop_text(a, "gen_ai.operation.name") if "gen_ai" in namespaces else None
        traceloop = _pop_text(a, "traceloop.span.kind") if "traceloop" in namespaces else None
        request_type = _pop_text(a, "llm.request.type") if "llm" in namespaces else None
        if langfuse_type and langfuse_type.lower() in _LANGFUSE_TYPES:
            return langfuse_type, _LANGFUSE_TYPES[langfuse_type.lower()]
        if openinference and openinference.upper() in _OPENINFERENCE_KINDS:
            return openinference, _OPENINFERENCE_KINDS[openinference.upper()]
        if operation and operation in _GENAI_OPERATIONS:
            return operation, _GENAI_OPERATIONS[operation]
        if traceloop and traceloop in _TRACELOOP_KINDS:
            return traceloop, _TRACELOOP_KINDS[traceloop]
        if request_type and request_type in _LLM_REQUEST_TYPES:
            return request_type, _LLM_REQUEST_TYPES[request_type]
        kind = langfuse_type or openinference or operation or traceloop or request_type
        if a.get("gen_ai.tool.name") or a.get("gen_ai.tool.call.id"):
            return kind, TOOL
        if any(
            a.get(key)
            for key in (
                "langfuse.observation.model.name",
                "gen_ai.request.model",
                "gen_ai.response.model",
                "llm.model_name",
            )
        ):
            return kind, LLM
        return kind, OTHER

    # LLM calls

    def model_call(self, values: dict[str, Any], metadata: dict[str, Any], *, chat: bool) -> None:
        a = self.attrs
        request = self._request()
        provider = provider_name(
            pop_first(a, "gen_ai.provider.name", "llm.provider", "gen_ai.system", "llm.system")
        )
        requested = as_text(pop_first(a, "gen_ai.request.model", "llm.request.model_name"))
        # OpenInference's llm.model_name is the model that answered (often a dated snapshot); a
        # replay sends the model that was asked for.
        named = as_text(
            pop_first(a, "langfuse.observation.model.name", "llm.model_name", "embedding.model_name")
        )
        response_model = as_text(
            pop_first(a, "gen_ai.response.model", "llm.response.model_name", "llm.response.model")
        )
        model = requested or as_text((request or {}).get("model")) or named or response_model
        if named and named != model and not response_model:
            response_model = named
        if model:
            values["model"] = model[:MAX_MODEL]
        if response_model and response_model != model:
            metadata["response_model"] = response_model
        if provider:
            metadata["provider"] = provider

        self._usage(values)
        parameters = self._parameters(request)
        tools = self._tools(request, parameters)
        if tools:
            metadata["tool_schemas"] = {t["function"]["name"]: t["function"]["parameters"] for t in tools}
            parameters["tools"] = msg.provider_tools(tools, provider)
        if parameters:
            metadata["parameters"] = parameters
            sampling = {key: parameters[key] for key in SAMPLING_KEYS if parameters.get(key) is not None}
            if "max_tokens" not in sampling and parameters.get("max_completion_tokens") is not None:
                sampling["max_tokens"] = parameters["max_completion_tokens"]
            if sampling:
                metadata["sampling"] = sampling
        finish = pop_first(a, "gen_ai.response.finish_reasons", "llm.finish_reason")
        if finish:
            metadata["finish_reason"] = finish[0] if isinstance(finish, list) and len(finish) == 1 else finish
        response_id = a.pop("gen_ai.response.id", None)
        if response_id:
            metadata["response_id"] = response_id

        if chat:
            values["input"] = self._chat_input(request)
            values["output"] = self._chat_output()
        else:
            values["input"] = _structured(
                pop_first(a, "langfuse.observation.input", "input.value", "traceloop.entity.input")
            )
            values["output"] = _structured(
                pop_first(a, "langfuse.observation.output", "output.value", "traceloop.entity.output")
            )

    def _request(self) -> dict[str, Any] | None:
        """The provider request recorded whole (OpenInference `input.value`, Langfuse's input)."""
        for key in ("langfuse.observation.input", "input.value"):
            value = parse_json(self.attrs.get(key))
            if isinstance(value, dict) and isinstance(value.get("messages"), list):
                return value
        return None

    def _usage(self, values: dict[str, Any]) -> None:
        a = self.attrs
        langfuse = "langfuse" in self.namespaces
        details = parse_json(a.pop("langfuse.observation.usage_details", None)) if langfuse else None
        details = details if isinstance(details, dict) else {}
        input_tokens = as_int(
            pop_first(
                a,
                "gen_ai.usage.input_tokens",
                "gen_ai.usage.prompt_tokens",
                "llm.token_count.prompt",
                "llm.usage.prompt_tokens",
            )
        )
        output_tokens = as_int(
            pop_first(
                a,
                "gen_ai.usage.output_tokens",
                "gen_ai.usage.completion_tokens",
                "llm.token_count.completion",
                "llm.usage.completion_tokens",
            )
        )
        if input_tokens is None and details:
            input_tokens = as_int(
                details.get("input", details.get("prompt_tokens", details.get("input_tokens")))
            )
        if output_tokens is None and details:
            output_tokens = as_int(
                details.get("output", details.get("completion_tokens", details.get("output_tokens")))
            )
        values["input_tokens"] = input_tokens
        values["output_tokens"] = output_tokens
        costs = parse_json(a.pop("langfuse.observation.cost_details", None)) if langfuse else None
        cost = as_float(pop_first(a, "llm.cost.total", "gen_ai.usage.cost"))
        if cost is None and isinstance(costs, dict):
            cost = as_float(costs.get("total"))
            if cost is None:
                parts = [as_float(v) for v in costs.values()]
                cost = sum(p for p in parts if p is not None) if any(p is not None for p in parts) else None
        values["cost"] = cost

    def _parameters(self, request: dict[str, Any] | None) -> dict[str, Any]:
        a = self.attrs
        found: dict[str, Any] = {}
        for key in ("llm.invocation_parameters", "langfuse.observation.model.parameters"):
            if key in a:
                value = parse_json(a.pop(key))
                if isinstance(value, dict):
                    found.update(value)
        for key, name in _GENAI_PARAMETERS.items() if self.namespaces & _PARAMETER_NAMESPACES else ():
            if key in a:
                value = a.pop(key)
                if value is not None and name not in found:
                    found[name] = value
        response_format = pop_first(a, *_RESPONSE_FORMAT_KEYS) if "gen_ai" in self.namespaces else None
        if response_format and "response_format" not in found:
            found["response_format"] = (
                {"type": response_format} if isinstance(response_format, str) else response_format
            )
        if request:
            found.update({k: v for k, v in request.items() if k != "messages"})
        return {k: v for k, v in found.items() if k not in _NOT_PARAMETERS and _finite(v)}

    def _tools(self, request: dict[str, Any] | None, parameters: dict[str, Any]) -> list[dict[str, Any]]:
        candidates: list[Any] = []
        recorded = parameters.pop("tools", None)
        if isinstance(recorded, list):
            candidates = recorded
        definitions = (
            parse_json(self.attrs.pop("gen_ai.tool.definitions", None))
            if "gen_ai" in self.namespaces
            else None
        )
        if not candidates and isinstance(definitions, list):
            candidates = definitions
        listed = self.groups.pop("llm.tools.", None)
        if not candidates and listed:
            candidates = [
                (entry.get("tool") or {}).get("json_schema")
                for entry in unflatten(listed)
                if isinstance(entry, dict)
            ]
        functions = self.groups.pop("llm.request.functions.", None)
        if not candidates and functions:
            candidates = [f for f in unflatten(functions) if isinstance(f, dict)]
        if not candidates:
            return []
        return [t for t in (msg.tool_definition(c) for c in candidates) if t is not None]

    def _chat_input(self, request: dict[str, Any] | None) -> Any:
        a, groups = self.attrs, self.groups
        openinference = groups.pop("llm.input_messages.", None)
        genai = a.pop("gen_ai.input.messages", None)
        system = a.pop("gen_ai.system_instructions", None)
        openllmetry = groups.pop("gen_ai.prompt.", None)
        prompts = groups.pop("llm.prompts.", None)
        recorded = pop_first(a, "langfuse.observation.input", "input.value", "traceloop.entity.input")
        a.pop("input.mime_type", None)
        messages: list[msg.Message] | None = None
        if request is not None:
            messages = msg.messages_of(request)
        if not messages and openinference:
            messages = msg.openinference_messages(_unflatten_messages(openinference))
        if not messages and genai is not None:
            messages = msg.genai_messages(genai)
            system_message = msg.genai_system(system) if system is not None else None
            if system_message and not any(m.get("role") == "system" for m in messages):
                messages.insert(0, system_message)
        if not messages and openllmetry:
            messages = msg.openllmetry_messages(unflatten(openllmetry))
        if not messages:
            messages = self._event_messages()
        if not messages:
            messages = msg.messages_of(recorded)
        if messages:
            chat: dict[str, Any] = {"messages": messages}
            if request is not None and request.get("system") is not None:
                chat["system"] = request["system"]
            return chat
        if prompts:
            texts = [((p.get("prompt") or {}).get("text")) for p in unflatten(prompts) if isinstance(p, dict)]
            texts = [t for t in texts if t]
            if texts:
                return {"prompt": texts[0] if len(texts) == 1 else texts}
        return _structured(recorded)

    def _chat_output(self) -> Any:
        a, groups = self.attrs, self.groups
        openinference = groups.pop("llm.output_messages.", None)
        genai = a.pop("gen_ai.output.messages", None)
        openllmetry = groups.pop("gen_ai.completion.", None)
        choices = groups.pop("llm.choices.", None)
        recorded = pop_first(a, "langfuse.observation.output", "output.value", "traceloop.entity.output")
        a.pop("output.mime_type", None)
        response = msg.response_output(recorded)
        if response is not None:
            return response
        if openinference:
            if openinference.keys() == _PLAIN_ANSWER:
                return openinference["0.message.content"]
            return msg.assistant_output(msg.openinference_messages(_unflatten_messages(openinference)))
        if genai is not None:
            return msg.assistant_output(msg.genai_messages(genai))
        if openllmetry:
            return msg.assistant_output(msg.openllmetry_messages(unflatten(openllmetry)))
        choice_events = self._take_events({"gen_ai.choice"})
        if choice_events:
            return msg.assistant_output([msg.choice_message(_event_body(e)) for _, e in choice_events])
        if choices:
            texts = [
                ((c.get("completion") or {}).get("text")) for c in unflatten(choices) if isinstance(c, dict)
            ]
            return next((t for t in texts if t), None)
        return _structured(recorded)

    def _event_messages(self) -> list[msg.Message]:
        return [
            msg.event_message(name, _event_body(e)) for name, e in self._take_events(msg.EVENT_ROLES.keys())
        ]

    def _take_events(self, names: Any) -> list[tuple[str, Any]]:
        taken = []
        for index, (name, event) in enumerate(self.events):
            if name in names and index not in self._used_events:
                self._used_events.add(index)
                taken.append((name, event))
        return taken

    # Tools

    def tool_call(self, values: dict[str, Any], metadata: dict[str, Any]) -> str | None:
        a = self.attrs
        name = as_text(pop_first(a, "gen_ai.tool.name", "tool.name", "tool_call.function.name"))
        call_id = as_text(pop_first(a, "gen_ai.tool.call.id", "tool_call.id", "tool.id"))
        if call_id:
            metadata["tool_call_id"] = call_id
        description = pop_first(a, "gen_ai.tool.description", "tool.description")
        if description:
            metadata["tool_description"] = description
        schema = parse_json(pop_first(a, "tool.parameters", "tool.json_schema"))
        if schema:
            metadata["tool_schema"] = schema
        input_mime = a.pop("input.mime_type", None)
        output_mime = a.pop("output.mime_type", None)
        arguments = pop_first(a, "gen_ai.tool.call.arguments", "tool_call.function.arguments")
        recorded_input = pop_first(a, "langfuse.observation.input", "input.value", "traceloop.entity.input")
        values["input"] = (
            _structured(arguments) if arguments is not None else _structured(recorded_input, input_mime)
        )
        result = pop_first(a, "gen_ai.tool.call.result")
        recorded_output = pop_first(
            a, "langfuse.observation.output", "output.value", "traceloop.entity.output"
        )
        values["output"] = (
            _structured(result) if result is not None else _structured(recorded_output, output_mime)
        )
        return name

    # Agent, chain and every other step

    def step(self, values: dict[str, Any], metadata: dict[str, Any]) -> None:
        a = self.attrs
        input_mime = a.pop("input.mime_type", None)
        output_mime = a.pop("output.mime_type", None)
        values["input"] = _structured(
            pop_first(a, "langfuse.observation.input", "input.value", "traceloop.entity.input"), input_mime
        )
        values["output"] = _structured(
            pop_first(a, "langfuse.observation.output", "output.value", "traceloop.entity.output"),
            output_mime,
        )
        model = as_text(pop_first(a, "langfuse.observation.model.name"))
        if model:
            values["model"] = model[:MAX_MODEL]
        if a.get("gen_ai.agent.name"):
            metadata["agent_name"] = a["gen_ai.agent.name"]

    # Errors

    def error(self, status: Status) -> str | None:
        level = status_message = None
        if "langfuse" in self.namespaces:
            level = as_text(self.attrs.pop("langfuse.observation.level", None))
            status_message = as_text(self.attrs.pop("langfuse.observation.status_message", None))
        exception = self._exception() if self.events else None
        if status.code == Status.STATUS_CODE_ERROR or level == "ERROR":
            return clean(status.message) or status_message or exception or "error"
        if level and level != "DEFAULT":
            self.attrs["langfuse.observation.level"] = level
        if status_message:
            self.attrs["langfuse.observation.status_message"] = status_message
        return None

    def _exception(self) -> str | None:
        for name, event in self.events:
            if name == "exception":
                details = attributes(event.attributes)
                kind = as_text(details.get("exception.type"))
                text = as_text(details.get("exception.message"))
                if kind or text:
                    return f"{kind}: {text}" if kind and text else kind or text
        return None

    # What belongs to the trace

    def trace_facts(self) -> dict[str, Any]:
        a, groups = self.attrs, self.groups
        fields: dict[str, Any] = {}
        metadata: dict[str, Any] = {}
        if "langfuse" in self.namespaces:
            self._langfuse_trace_facts(fields, metadata)
        namespaces = self.namespaces
        if "session" in namespaces or "gen_ai" in namespaces:
            session = as_text(pop_first(a, "session.id", "gen_ai.conversation.id"))
            if session and "session_id" not in fields:
                fields["session_id"] = session[:256]
        if "user" in namespaces:
            user = as_text(pop_first(a, "user.id"))
            if user and "user_id" not in metadata:
                metadata["user_id"] = user
        if "tag" in namespaces:
            tags = parse_json(pop_first(a, "tag.tags"))
            if tags and "tags" not in metadata:
                metadata["tags"] = tags if isinstance(tags, list) else [tags]
        if "traceloop" in namespaces:
            metadata.update(groups.pop("traceloop.association.properties.", {}))
            workflow = a.pop("traceloop.workflow.name", None)
            if workflow:
                metadata["workflow"] = workflow
        if metadata:
            fields["metadata"] = metadata
        return fields

    def _langfuse_trace_facts(self, fields: dict[str, Any], metadata: dict[str, Any]) -> None:
        a, groups = self.attrs, self.groups
        name = as_text(a.pop("langfuse.trace.name", None))
        if name:
            fields["name"] = name[:MAX_NAME]
        for key, target in (("langfuse.trace.input", "input"), ("langfuse.trace.output", "output")):
            if key in a:
                fields[target] = _structured(a.pop(key))
        session = as_text(pop_first(a, "langfuse.session.id"))
        if session:
            fields["session_id"] = session[:256]
        user = as_text(pop_first(a, "langfuse.user.id"))
        if user:
            metadata["user_id"] = user
        tags = parse_json(pop_first(a, "langfuse.trace.tags"))
        if tags:
            metadata["tags"] = tags if isinstance(tags, list) else [tags]
        for key in ("langfuse.environment", "langfuse.release", "langfuse.version", "langfuse.trace.public"):
            if key in a:
                metadata[key.removeprefix("langfuse.")] = a.pop(key)
        trace_metadata = parse_json(a.pop("langfuse.trace.metadata", None))
        if isinstance(trace_metadata, dict):
            metadata.update(trace_metadata)
        metadata.update(groups.pop("langfuse.trace.metadata.", {}))

    def user_metadata(self) -> dict[str, Any]:
        """The metadata the application attached to the span (OpenInference `metadata`, Langfuse)."""
        a = self.attrs
        found: dict[str, Any] = {}
        for key in ("metadata", "langfuse.observation.metadata"):
            if key in a:
                value = parse_json(a[key])
                if isinstance(value, dict):
                    found.update(value)
                    del a[key]
        if "langfuse.observation.metadata." in self.groups:
            found.update(self.groups.pop("langfuse.observation.metadata."))
        return found

    def other_events(self) -> list[dict[str, Any]]:
        """Span events the mapping did not turn into messages or errors, kept as they came."""
        out = []
        for index, (name, event) in enumerate(self.events):
            if index in self._used_events:
                continue
            out.append(
                {
                    "name": clean(name),
                    "time": iso_time(event.time_unix_nano),
                    "attributes": attributes(event.attributes),
                }
            )
        return out

    def leftover(self) -> Attributes:
        """Every attribute nothing mapped, under its original name."""
        out = self.attrs
        for prefix, flat in self.groups.items():
            for rest, value in flat.items():
                out[prefix + rest] = value
        return out


def _event_body(event: Any) -> Any:
    """A span event's content: its attributes (span events have no body)."""
    details = attributes(event.attributes)
    if "body" in details:
        return details["body"]
    if "gen_ai.event.content" in details:
        return details["gen_ai.event.content"]
    return details
