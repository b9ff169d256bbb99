"""OTLP bodies in, ingest writes out: the conventions each instrumentation speaks, mapped onto spans."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from retrace_server.ingest import TraceWrite
from retrace_server.otlp import decode
from retrace_server.otlp.errors import PayloadTooLarge, UndecodableBody, UnsupportedMediaType
from retrace_server.otlp.logs import map_logs
from retrace_server.otlp.traces import MappedExport, map_export
from tests.otlp import bodies as b

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def mapped(document: dict[str, Any]) -> MappedExport:
    return map_export(decode.decode_traces(b.dumps(document), "json"))


def only_write(result: MappedExport) -> TraceWrite:
    assert result.rejected == 0, result.message()
    assert len(result.writes) == 1
    return result.writes[0]


def spans_by_name(write: TraceWrite) -> dict[str, dict[str, Any]]:
    return {part.values["name"]: part.values for part in write.spans}


# Decoding


def test_content_types_pick_the_encoding() -> None:
    assert decode.encoding_of("application/x-protobuf") == "protobuf"
    assert decode.encoding_of("application/json; charset=utf-8") == "json"
    for other in (None, "text/plain", "application/grpc"):
        with pytest.raises(UnsupportedMediaType):
            decode.encoding_of(other)


def test_gzip_bodies_are_inflated_within_the_limit() -> None:
    raw = b'{"resourceSpans": []}'
    assert decode.decompress(gzip.compress(raw), "gzip", limit=100) == raw
    assert decode.decompress(raw, None, limit=100) == raw
    with pytest.raises(PayloadTooLarge):
        decode.decompress(gzip.compress(b"0" * 10_000), "gzip", limit=1_000)
    with pytest.raises(UndecodableBody):
        decode.decompress(gzip.compress(raw)[:-6], "gzip", limit=100)
    with pytest.raises(UndecodableBody):
        decode.decompress(b"not gzip at all", "gzip", limit=100)
    with pytest.raises(UnsupportedMediaType):
        decode.decompress(raw, "br", limit=100)


def test_garbage_and_wrong_shapes_are_undecodable() -> None:
    with pytest.raises(UndecodableBody, match="protobuf"):
        decode.decode_traces(b"\xff\xfe this is not protobuf \x00\x01", "protobuf")
    for body in (
        b"{not json",
        b"[1, 2]",
        b'{"resourceSpans": 5}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [7]}]}]}',
    ):
        with pytest.raises(UndecodableBody, match="JSON"):
            decode.decode_traces(body, "json")


def test_json_accepts_hex_or_base64_ids_names_and_string_integers() -> None:
    trace, root = b.trace_id(), b.span_id()
    document = b.export([b.span(trace, root, "agent")])
    as_written = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    as_written["kind"] = "SPAN_KIND_SERVER"
    write = only_write(mapped(document))
    assert write.trace_id == trace
    assert write.spans[0].values["id"] == root
    assert write.spans[0].values["metadata"]["otel"]["span_kind"] == "server"

    import base64

    as_written["traceId"] = base64.b64encode(bytes.fromhex(trace)).decode()
    as_written["span_id"] = base64.b64encode(bytes.fromhex(root)).decode()
    del as_written["spanId"]
    write = only_write(mapped(document))
    assert (write.trace_id, write.spans[0].values["id"]) == (trace, root)


def test_spans_without_valid_ids_or_start_are_refused_by_position_and_the_rest_kept() -> None:
    trace = b.trace_id()
    good = b.span(trace, b.span_id(), "kept")
    no_span_id = b.span(trace, "", "no span id")
    short_trace = b.span(trace[:30], b.span_id(), "short trace id")
    zero_span = b.span(trace, "0" * 16, "zero span id")
    odd_parent = b.span(trace, b.span_id(), "odd parent", parent="abc")
    not_hex = b.span("z" * 32, b.span_id(), "not hex")
    no_start = b.span(trace, b.span_id(), "no start")
    del no_start["startTimeUnixNano"]
    result = mapped(b.export([good, no_span_id, short_trace, zero_span, odd_parent, not_hex, no_start]))
    assert result.rejected == 6
    assert [part.values["name"] for w in result.writes for part in w.spans] == ["kept"]
    message = result.message()
    assert "resourceSpans[0].scopeSpans[0].spans[1]: spanId must be 8 bytes" in message
    assert "spans[2]: traceId must be 16 bytes" in message
    assert "(and 1 more)" in message


# Traces


def test_root_span_ends_the_trace_and_names_it() -> None:
    trace, root, child = b.trace_id(), b.span_id(), b.span_id()
    write = only_write(
        mapped(
            b.export(
                [
                    b.span(trace, child, "step", parent=root, start_s=1, end_s=2),
                    b.span(
                        trace,
                        root,
                        "travel agent",
                        start_s=0.5,
                        end_s=3,
                        attributes={"input.value": "Paris?"},
                    ),
                ],
                resource={"service.name": "travel-agent", "deployment.environment": "test"},
            )
        )
    )
    assert write.mode == "upsert"
    assert write.fields["status"] == "completed"
    assert write.fields["started_at"] == datetime(2026, 1, 1, 0, 0, 0, 500_000, tzinfo=UTC)
    assert write.fields["ended_at"] == datetime(2026, 1, 1, 0, 0, 3, tzinfo=UTC)
    assert write.defaults["name"] == "travel agent"
    assert write.defaults["input"] == "Paris?"
    assert write.fields["metadata"] == {
        "service.name": "travel-agent",
        "deployment.environment": "test",
        "source": "otlp",
    }
    spans = spans_by_name(write)
    assert spans["step"]["parent_id"] == root
    assert spans["travel agent"]["parent_id"] is None
    assert spans["step"]["duration_ms"] == 1000


def test_without_its_root_a_trace_stays_running_and_names_nothing() -> None:
    trace, root = b.trace_id(), b.span_id()
    write = only_write(mapped(b.export([b.span(trace, b.span_id(), "step", parent=root, start_s=2)])))
    assert "status" not in write.fields
    assert write.defaults["status"] == "running"
    assert write.defaults["started_at"] == datetime(2026, 1, 1, 0, 0, 2, tzinfo=UTC)
    assert "name" not in write.defaults and "name" not in write.fields


def test_a_failed_root_fails_the_trace_and_error_spans_are_errors() -> None:
    trace, root = b.trace_id(), b.span_id()
    crash = b.event("exception", 0.9, {"exception.type": "ValueError", "exception.message": "no city"})
    write = only_write(
        mapped(
            b.export(
                [
                    b.span(trace, root, "agent", error="the agent gave up"),
                    b.span(trace, b.span_id(), "parse", parent=root, error="", events=[crash]),
                ]
            )
        )
    )
    assert write.fields["status"] == "failed"
    assert write.fields["error"] == "the agent gave up"
    spans = spans_by_name(write)
    assert spans["parse"]["span_type"] == "error"
    assert spans["parse"]["error"] == "ValueError: no city"
    assert spans["parse"]["metadata"]["otel"]["events"][0]["name"] == "exception"


def test_a_span_whose_parent_is_in_another_process_is_a_root() -> None:
    trace, remote = b.trace_id(), b.span_id()
    document = b.export([b.span(trace, b.span_id(), "handler", parent=remote)])
    document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["flags"] = 0x300
    write = only_write(mapped(document))
    assert write.fields["status"] == "completed"
    assert write.spans[0].values["parent_id"] is None
    assert write.spans[0].values["metadata"]["otel"]["remote_parent_id"] == remote


def test_sessions_users_tags_and_explicit_trace_names_go_on_the_trace() -> None:
    trace, root = b.trace_id(), b.span_id()
    write = only_write(
        mapped(
            b.export(
                [
                    b.span(trace, root, "root"),
                    b.span(
                        trace,
                        b.span_id(),
                        "child",
                        parent=root,
                        attributes={
                            "session.id": "chat-42",
                            "user.id": "ada",
                            "tag.tags": ["beta", "eu"],
                            "langfuse.trace.name": "Trip planner",
                            "langfuse.trace.metadata.plan": "pro",
                        },
                    ),
                ]
            )
        )
    )
    assert write.fields["name"] == "Trip planner"
    assert write.fields["session_id"] == "chat-42"
    assert write.fields["metadata"]["user_id"] == "ada"
    assert write.fields["metadata"]["tags"] == ["beta", "eu"]
    assert write.fields["metadata"]["plan"] == "pro"


def test_unmapped_attributes_and_the_original_kind_are_kept() -> None:
    trace = b.trace_id()
    attributes = {
        "openinference.span.kind": "RETRIEVER",
        "retrieval.documents.0.document.id": "d1",
        "http.status": 200,
    }
    write = only_write(
        mapped(b.export([b.span(trace, b.span_id(), "search", attributes=attributes)], scope="my.lib"))
    )
    values = write.spans[0].values
    assert values["span_type"] == "action"
    assert values["metadata"]["kind"] == "RETRIEVER"
    assert values["metadata"]["attributes"] == {"retrieval.documents.0.document.id": "d1", "http.status": 200}
    assert values["metadata"]["otel"] == {"span_kind": "internal", "scope": "my.lib", "scope_version": "1.0"}


# OpenInference


def test_openinference_llm_span_from_flattened_messages() -> None:
    trace = b.trace_id()
    attributes = {
        "openinference.span.kind": "LLM",
        "llm.provider": "anthropic",
        "llm.model_name": "claude-3-5-haiku-latest",
        "llm.invocation_parameters": json.dumps({"max_tokens": 200, "temperature": 0.3}),
        "llm.input_messages.0.message.role": "system",
        "llm.input_messages.0.message.content": "You help travellers.",
        "llm.input_messages.1.message.role": "user",
        "llm.input_messages.1.message.contents.0.message_content.type": "text",
        "llm.input_messages.1.message.contents.0.message_content.text": "Weather in Paris?",
        "llm.input_messages.2.message.role": "assistant",
        "llm.input_messages.2.message.tool_calls.0.tool_call.id": "toolu_1",
        "llm.input_messages.2.message.tool_calls.0.tool_call.function.name": "get_weather",
        "llm.input_messages.2.message.tool_calls.0.tool_call.function.arguments": '{"city": "Paris"}',
        "llm.input_messages.3.message.role": "tool",
        "llm.input_messages.3.message.tool_call_id": "toolu_1",
        "llm.input_messages.3.message.content": '{"temp_c": 21}',
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.content": "Sunny, 21 C.",
        "llm.tools.0.tool.json_schema": json.dumps(WEATHER_TOOL),
        "llm.token_count.prompt": 40,
        "llm.token_count.completion": 6,
        "llm.token_count.total": 46,
        "llm.cost.total": 0.0012,
        "session.id": "s-1",
    }
    values = (
        only_write(mapped(b.export([b.span(trace, b.span_id(), "messages", attributes=attributes)])))
        .spans[0]
        .values
    )
    assert values["span_type"] == "llm_call"
    assert values["model"] == "claude-3-5-haiku-latest"
    assert (values["input_tokens"], values["output_tokens"], values["cost"]) == (40, 6, 0.0012)
    assert values["input"] == {
        "messages": [
            {"role": "system", "content": "You help travellers."},
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "toolu_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "content": '{"temp_c": 21}', "tool_call_id": "toolu_1"},
        ]
    }
    assert values["output"] == "Sunny, 21 C."
    metadata = values["metadata"]
    assert metadata["provider"] == "anthropic"
    assert metadata["sampling"] == {"temperature": 0.3, "max_tokens": 200}
    assert metadata["tool_schemas"] == {"get_weather": WEATHER_TOOL["function"]["parameters"]}
    # Anthropic takes its tools as name, description and input_schema.
    assert metadata["parameters"]["tools"] == [
        {
            "name": "get_weather",
            "input_schema": WEATHER_TOOL["function"]["parameters"],
            "description": "Weather of a city",
        }
    ]
    assert metadata["attributes"] == {"llm.token_count.total": 46}


def test_openinference_request_recorded_whole_is_the_input() -> None:
    trace = b.trace_id()
    request = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [WEATHER_TOOL],
        "tool_choice": "auto",
        "temperature": 0.2,
        "stream": False,
    }
    response = {
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": "{}"},
                        }
                    ],
                }
            }
        ]
    }
    attributes = {
        "openinference.span.kind": "LLM",
        "llm.system": "openai",
        "llm.model_name": "gpt-4o-mini-2024-07-18",
        "input.value": json.dumps(request),
        "input.mime_type": "application/json",
        "output.value": json.dumps(response),
        "output.mime_type": "application/json",
        "llm.input_messages.0.message.role": "user",
        "llm.input_messages.0.message.content": "Weather in Paris?",
    }
    values = (
        only_write(mapped(b.export([b.span(trace, b.span_id(), "ChatCompletion", attributes=attributes)])))
        .spans[0]
        .values
    )
    assert values["model"] == "gpt-4o-mini"
    assert values["metadata"]["response_model"] == "gpt-4o-mini-2024-07-18"
    assert values["input"] == {"messages": request["messages"]}
    assert values["output"] == {
        "role": "assistant",
        "content": "",
        "tool_calls": response["choices"][0]["message"]["tool_calls"],
    }
    assert values["metadata"]["parameters"] == {
        "temperature": 0.2,
        "tool_choice": "auto",
        "tools": [WEATHER_TOOL],
    }
    assert "attributes" not in values["metadata"]


def test_openinference_tool_agent_and_chain_spans() -> None:
    trace, agent = b.trace_id(), b.span_id()
    write = only_write(
        mapped(
            b.export(
                [
                    b.span(
                        trace,
                        agent,
                        "agent",
                        attributes={
                            "openinference.span.kind": "AGENT",
                            "input.value": "What should I wear?",
                            "output.value": '{"answer": "a jacket"}',
                            "output.mime_type": "application/json",
                            "agent.name": "planner",
                        },
                    ),
                    b.span(
                        trace,
                        b.span_id(),
                        "get_weather",
                        parent=agent,
                        attributes={
                            "openinference.span.kind": "TOOL",
                            "tool.name": "get_weather",
                            "tool.description": "Weather of a city",
                            "tool_call.id": "call_1",
                            "input.value": '{"city": "Paris"}',
                            "input.mime_type": "application/json",
                            "output.value": '{"temp_c": 21}',
                        },
                    ),
                    b.span(
                        trace,
                        b.span_id(),
                        "format",
                        parent=agent,
                        attributes={"openinference.span.kind": "CHAIN"},
                    ),
                ]
            )
        )
    )
    spans = spans_by_name(write)
    assert spans["agent"]["span_type"] == "action"
    assert spans["agent"]["output"] == {"answer": "a jacket"}
    assert spans["agent"]["agent_id"] == "planner"
    tool = spans["get_weather"]
    assert tool["span_type"] == "tool_call"
    assert tool["input"] == {"city": "Paris"}
    assert tool["output"] == {"temp_c": 21}
    assert tool["metadata"]["tool_call_id"] == "call_1"
    assert spans["format"]["span_type"] == "action"
    assert spans["format"]["metadata"]["kind"] == "CHAIN"
    assert write.defaults["input"] == "What should I wear?"


# OpenTelemetry GenAI semantic conventions


def test_genai_current_conventions() -> None:
    trace = b.trace_id()
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "azure.ai.openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.request.temperature": 0.5,
        "gen_ai.request.max_tokens": 300,
        "gen_ai.request.stop_sequences": ["END"],
        "gen_ai.usage.input_tokens": 30,
        "gen_ai.usage.output_tokens": 12,
        "gen_ai.response.finish_reasons": ["tool_calls"],
        "gen_ai.conversation.id": "conv-9",
        "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "Be brief."}]),
        "gen_ai.tool.definitions": json.dumps(
            [
                {
                    "type": "function",
                    "name": "get_weather",
                    "parameters": WEATHER_TOOL["function"]["parameters"],
                }
            ]
        ),
        "gen_ai.input.messages": json.dumps(
            [
                {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
                {
                    "role": "assistant",
                    "parts": [
                        {
                            "type": "tool_call",
                            "id": "c1",
                            "name": "get_weather",
                            "arguments": {"city": "Paris"},
                        }
                    ],
                },
                {
                    "role": "tool",
                    "parts": [{"type": "tool_call_response", "id": "c1", "response": {"temp_c": 21}}],
                },
            ]
        ),
        "gen_ai.output.messages": json.dumps(
            [{"role": "assistant", "parts": [{"type": "text", "content": "Sunny."}], "finish_reason": "stop"}]
        ),
    }
    write = only_write(
        mapped(b.export([b.span(trace, b.span_id(), "chat gpt-4o", attributes=attributes, kind=3)]))
    )
    values = write.spans[0].values
    assert values["span_type"] == "llm_call"
    assert values["model"] == "gpt-4o"
    assert (values["input_tokens"], values["output_tokens"]) == (30, 12)
    assert values["input"]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "content": '{"temp_c":21}', "tool_call_id": "c1"},
    ]
    assert values["output"] == "Sunny."
    metadata = values["metadata"]
    assert metadata["provider"] == "azure"
    assert metadata["kind"] == "chat"
    assert metadata["sampling"] == {"temperature": 0.5, "max_tokens": 300}
    assert metadata["parameters"]["stop"] == ["END"]
    assert metadata["parameters"]["tools"] == [
        {
            "type": "function",
            "function": {"name": "get_weather", "parameters": WEATHER_TOOL["function"]["parameters"]},
        }
    ]
    assert metadata["finish_reason"] == "tool_calls"
    assert metadata["otel"]["span_kind"] == "client"
    assert write.fields["session_id"] == "conv-9"


def test_genai_older_conventions_with_message_events() -> None:
    trace = b.trace_id()
    events = [
        b.event("gen_ai.system.message", 0.1, {"gen_ai.system": "openai", "content": "Be brief."}),
        b.event("gen_ai.user.message", 0.1, {"gen_ai.system": "openai", "content": "Weather in Paris?"}),
        b.event(
            "gen_ai.choice",
            0.9,
            {
                "index": 0,
                "finish_reason": "stop",
                "message": json.dumps({"role": "assistant", "content": "Sunny."}),
            },
        ),
    ]
    attributes = {
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.prompt_tokens": 9,
        "gen_ai.usage.completion_tokens": 2,
    }
    values = (
        only_write(
            mapped(b.export([b.span(trace, b.span_id(), "chat", attributes=attributes, events=events)]))
        )
        .spans[0]
        .values
    )
    assert values["span_type"] == "llm_call"
    assert (values["input_tokens"], values["output_tokens"]) == (9, 2)
    assert values["input"] == {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris?"},
        ]
    }
    assert values["output"] == "Sunny."
    assert values["metadata"]["provider"] == "openai"
    assert "events" not in values["metadata"]["otel"]


def test_genai_tool_and_agent_spans() -> None:
    trace, agent = b.trace_id(), b.span_id()
    write = only_write(
        mapped(
            b.export(
                [
                    b.span(
                        trace,
                        agent,
                        "invoke_agent planner",
                        attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"},
                    ),
                    b.span(
                        trace,
                        b.span_id(),
                        "execute_tool get_weather",
                        parent=agent,
                        attributes={
                            "gen_ai.operation.name": "execute_tool",
                            "gen_ai.tool.name": "get_weather",
                            "gen_ai.tool.call.id": "c1",
                            "gen_ai.tool.call.arguments": '{"city": "Paris"}',
                            "gen_ai.tool.call.result": '{"temp_c": 21}',
                        },
                    ),
                ]
            )
        )
    )
    spans = spans_by_name(write)
    assert spans["invoke_agent planner"]["span_type"] == "action"
    assert spans["invoke_agent planner"]["agent_id"] == "planner"
    tool = spans["get_weather"]
    assert tool["span_type"] == "tool_call"
    assert (tool["input"], tool["output"]) == ({"city": "Paris"}, {"temp_c": 21})
    assert tool["metadata"]["otel"]["name"] == "execute_tool get_weather"
    assert tool["metadata"]["tool_call_id"] == "c1"


# OpenLLMetry


def test_openllmetry_prompt_and_completion_attributes() -> None:
    trace, workflow = b.trace_id(), b.span_id()
    attributes = {
        "llm.request.type": "chat",
        "gen_ai.system": "OpenAI",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.request.temperature": 0.7,
        "gen_ai.prompt.0.role": "user",
        "gen_ai.prompt.0.content": "Weather in Paris?",
        "gen_ai.completion.0.role": "assistant",
        "gen_ai.completion.0.finish_reason": "tool_calls",
        "gen_ai.completion.0.tool_calls.0.id": "call_9",
        "gen_ai.completion.0.tool_calls.0.name": "get_weather",
        "gen_ai.completion.0.tool_calls.0.arguments": '{"city": "Paris"}',
        "llm.request.functions.0.name": "get_weather",
        "llm.request.functions.0.description": "Weather of a city",
        "llm.request.functions.0.parameters": json.dumps(WEATHER_TOOL["function"]["parameters"]),
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 8,
        "llm.usage.total_tokens": 20,
    }
    write = only_write(
        mapped(
            b.export(
                [
                    b.span(
                        trace,
                        workflow,
                        "trip.workflow",
                        attributes={
                            "traceloop.span.kind": "workflow",
                            "traceloop.entity.name": "trip",
                            "traceloop.entity.input": json.dumps({"args": [], "kwargs": {"city": "Paris"}}),
                            "traceloop.entity.output": json.dumps("take a jacket"),
                            "traceloop.workflow.name": "trip",
                        },
                    ),
                    b.span(trace, b.span_id(), "openai.chat", parent=workflow, attributes=attributes),
                    b.span(
                        trace,
                        b.span_id(),
                        "get_weather.tool",
                        parent=workflow,
                        attributes={
                            "traceloop.span.kind": "tool",
                            "traceloop.entity.name": "get_weather",
                            "traceloop.entity.input": '{"args": [], "kwargs": {"city": "Paris"}}',
                        },
                    ),
                ]
            )
        )
    )
    spans = spans_by_name(write)
    llm = spans["openai.chat"]
    assert llm["span_type"] == "llm_call"
    assert llm["input"] == {"messages": [{"role": "user", "content": "Weather in Paris?"}]}
    assert llm["output"] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "call_9",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    }
    assert llm["metadata"]["provider"] == "openai"
    assert llm["metadata"]["tool_schemas"] == {"get_weather": WEATHER_TOOL["function"]["parameters"]}
    assert spans["trip.workflow"]["input"] == {"city": "Paris"}
    assert spans["trip.workflow"]["output"] == "take a jacket"
    assert spans["get_weather.tool"]["span_type"] == "tool_call"
    assert spans["get_weather.tool"]["input"] == {"city": "Paris"}
    assert write.fields["metadata"]["workflow"] == "trip"


# Langfuse


def test_langfuse_generation_and_trace_attributes() -> None:
    trace, root = b.trace_id(), b.span_id()
    generation = {
        "langfuse.observation.type": "generation",
        "langfuse.observation.model.name": "gpt-4o-mini",
        "langfuse.observation.model.parameters": json.dumps(
            {"temperature": 0.2, "max_tokens": "Infinity", "top_p": 1}
        ),
        "langfuse.observation.input": json.dumps(
            {"tools": [WEATHER_TOOL], "messages": [{"role": "user", "content": "Hi"}]}
        ),
        "langfuse.observation.output": json.dumps({"role": "assistant", "content": "Hello!"}),
        "langfuse.observation.usage_details": json.dumps(
            {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        ),
        "langfuse.observation.cost_details": json.dumps({"input": 0.001, "output": 0.002}),
        "langfuse.observation.metadata.step": "greet",
    }
    write = only_write(
        mapped(
            b.export(
                [
                    b.span(
                        trace,
                        root,
                        "agent",
                        attributes={
                            "langfuse.observation.type": "span",
                            "langfuse.observation.input": json.dumps({"args": ["Hi"], "kwargs": {}}),
                            "langfuse.trace.tags": ["demo"],
                            "langfuse.user.id": "ada",
                            "langfuse.session.id": "sess",
                            "langfuse.environment": "staging",
                        },
                    ),
                    b.span(trace, b.span_id(), "OpenAI-generation", parent=root, attributes=generation),
                    b.span(
                        trace,
                        b.span_id(),
                        "lookup",
                        parent=root,
                        attributes={
                            "langfuse.observation.type": "span",
                            "langfuse.observation.level": "ERROR",
                            "langfuse.observation.status_message": "lookup failed",
                        },
                    ),
                ],
                scope="langfuse-sdk",
            )
        )
    )
    spans = spans_by_name(write)
    llm = spans["OpenAI-generation"]
    assert llm["span_type"] == "llm_call"
    assert llm["input"] == {"messages": [{"role": "user", "content": "Hi"}]}
    assert llm["output"] == "Hello!"
    assert (llm["input_tokens"], llm["output_tokens"]) == (3, 2)
    assert llm["cost"] == pytest.approx(0.003)
    assert llm["metadata"]["step"] == "greet"
    assert llm["metadata"]["parameters"] == {"temperature": 0.2, "top_p": 1, "tools": [WEATHER_TOOL]}
    assert llm["metadata"]["sampling"] == {"temperature": 0.2, "top_p": 1}
    assert spans["agent"]["input"] == {"args": ["Hi"], "kwargs": {}}
    assert spans["lookup"]["span_type"] == "error"
    assert spans["lookup"]["error"] == "lookup failed"
    assert write.fields["session_id"] == "sess"
    assert write.fields["metadata"]["user_id"] == "ada"
    assert write.fields["metadata"]["tags"] == ["demo"]
    assert write.fields["metadata"]["environment"] == "staging"


# Log events


def test_genai_log_events_fill_their_span() -> None:
    trace, sid = b.trace_id(), b.span_id()
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    records = [
        b.log_record(
            trace,
            sid,
            "gen_ai.system.message",
            body={"content": "Be brief."},
            attributes={"gen_ai.system": "openai"},
        ),
        b.log_record(trace, sid, "gen_ai.user.message", body={"content": "Weather in Paris?"}),
        b.log_record(trace, sid, "gen_ai.assistant.message", body={"tool_calls": [call]}),
        b.log_record(trace, sid, "gen_ai.tool.message", body={"content": '{"temp_c": 21}', "id": "call_1"}),
        b.log_record(
            trace,
            sid,
            "gen_ai.choice",
            body={"index": 0, "finish_reason": "stop", "message": {"content": "Sunny."}},
        ),
        b.log_record(trace, sid, "app.log", body="something else"),
        b.log_record(trace, "", "gen_ai.user.message", body={"content": "orphan"}),
    ]
    result = map_logs(decode.decode_logs(b.dumps(b.logs_export(records)), "json"))
    assert result.rejected == 2
    assert "logRecords[5]: only GenAI events" in result.message()
    assert "logRecords[6]: spanId must be 8 bytes" in result.message()
    (write,) = result.writes
    assert write.trace_id == trace
    assert write.defaults["status"] == "running"
    (part,) = write.spans
    assert part.authority == frozenset()
    assert part.values["id"] == sid
    assert part.values["input"] == {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "content": '{"temp_c": 21}', "tool_call_id": "call_1"},
        ]
    }
    assert part.values["output"] == "Sunny."
    assert part.values["metadata"]["provider"] == "openai"


def test_operation_details_event_fills_its_span() -> None:
    trace, sid = b.trace_id(), b.span_id()
    details = {
        "gen_ai.provider.name": "openai",
        "gen_ai.input.messages": [
            {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]}
        ],
        "gen_ai.output.messages": [
            {
                "role": "assistant",
                "parts": [
                    {"type": "tool_call", "id": "c1", "name": "get_weather", "arguments": {"city": "Paris"}}
                ],
            }
        ],
    }
    result = map_logs(
        decode.decode_logs(
            b.dumps(
                b.logs_export(
                    [
                        b.log_record(
                            trace, sid, "gen_ai.client.inference.operation.details", attributes=details
                        )
                    ]
                )
            ),
            "json",
        )
    )
    (write,) = result.writes
    values = write.spans[0].values
    assert values["input"] == {"messages": [{"role": "user", "content": "Weather in Paris?"}]}
    assert values["output"]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": '{"city":"Paris"}',
    }


def test_mapping_is_a_function_of_the_span_alone() -> None:
    """Resending a span (or sending it in another export) writes exactly the same values."""
    trace, root, child = b.trace_id(), b.span_id(), b.span_id()
    one = b.span(
        trace, child, "step", parent=root, attributes={"openinference.span.kind": "TOOL", "input.value": "x"}
    )
    first = only_write(mapped(b.export([one]))).spans[0].values
    again = only_write(mapped(b.export([b.span(trace, root, "root"), one]))).spans
    assert next(p.values for p in again if p.values["id"] == child) == first
