"""Real OpenTelemetry clients record a tool-using agent run into the server, which then replays it.

Each client exports over real HTTP to a real server: OpenInference's OpenAI instrumentation with
the OTLP protobuf exporter, the official GenAI instrumentation (messages sent as log events), the
Langfuse SDK, and an OTLP/JSON body written by hand.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from tests.otlp import bodies as b
from tests.otlp.agent import (
    MODEL,
    QUESTION,
    SYSTEM,
    WEATHER,
    WEATHER_TOOL,
    Run,
    ToolCallingLLM,
    run_weather_agent,
)
from tests.otlp.conftest import stored_trace
from tests.support.server import ApiUser, RunningServer


def tracer_provider(url: str, headers: dict[str, str], *, service: str) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporter = OTLPSpanExporter(endpoint=f"{url}/v1/traces", headers=headers, compression=Compression.Gzip)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def openai_client(llm: ToolCallingLLM) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{llm.url}/v1", api_key="sk-test", max_retries=0)


def by_type(trace: dict[str, Any], span_type: str) -> list[dict[str, Any]]:
    return [s for s in trace["spans"] if s["span_type"] == span_type]


def check_weather_run(trace: dict[str, Any], run: Run, *, root_name: str) -> dict[str, Any]:
    """The stored trace of one agent run: its tree, steps, models, tokens, messages, tool call and cost."""
    assert trace["status"] == "completed", trace
    assert trace["name"] == root_name
    assert trace["metadata"]["source"] == "otlp"
    (root,) = [s for s in trace["spans"] if s["parent_id"] is None]
    assert root["name"] == root_name and root["span_type"] == "action"
    assert all(s["parent_id"] == root["id"] for s in trace["spans"] if s is not root), (
        "one agent, three steps"
    )

    plan, answer = by_type(trace, "llm_call")
    (tool,) = by_type(trace, "tool_call")
    assert plan["started_at"] < tool["started_at"] < answer["started_at"]
    for llm_span in (plan, answer):
        assert llm_span["model"] == MODEL
        assert llm_span["input_tokens"] > 0 and llm_span["output_tokens"] > 0
        assert llm_span["cost"] > 0, "gpt-4o-mini is in the price table"
        assert llm_span["error"] is None
    assert plan["input"]["messages"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": run.question},
    ]
    (call,) = plan["output"]["tool_calls"]
    assert call["id"] == run.tool_call_id
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assistant, tool_message = answer["input"]["messages"][2:]
    assert assistant["role"] == "assistant" and assistant["tool_calls"][0]["id"] == run.tool_call_id
    assert tool_message["role"] == "tool" and tool_message["tool_call_id"] == run.tool_call_id
    assert json.loads(tool_message["content"]) == WEATHER
    assert answer["output"] == run.answer

    assert tool["name"] == "get_weather"
    assert tool["input"] == {"city": "Paris"}
    assert tool["output"] == WEATHER
    assert trace["total_tokens"] == sum(s["input_tokens"] + s["output_tokens"] for s in (plan, answer))
    assert trace["total_cost"] == pytest.approx(plan["cost"] + answer["cost"])
    return plan


def replay_llm_call(
    user: ApiUser, llm: ToolCallingLLM, trace: dict[str, Any], *, step: int = 0, tools: bool
) -> dict[str, Any]:
    """Forks the run at an LLM call and replays it: the provider gets the recorded request."""
    plan = by_type(trace, "llm_call")[step]
    r = user.client.post("/api/v1/forks", json={"trace_id": trace["id"], "fork_point_span_id": plan["id"]})
    assert r.status_code == 201, r.text
    start = len(llm.requests)
    done = user.client.post(f"/api/v1/forks/{r.json()['id']}/replay")
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "completed", (done.json().get("error"), done.json())
    sent = llm.requests[start]["body"]
    assert sent["model"] == MODEL
    assert sent["messages"] == plan["input"]["messages"]
    assert sent["temperature"] == 0.2
    if tools:
        assert sent["tools"] == [WEATHER_TOOL]
    result = stored_trace(user, done.json()["result_trace_id"])
    executed = by_type(result, "llm_call")[step]
    assert executed["metadata"]["replay"] == "executed"
    if tools:
        assert executed["output"]["tool_calls"][0]["function"]["name"] == "get_weather"
    else:
        assert isinstance(executed["output"], str) and executed["output"]
    return result


def test_openinference_instrumentation_with_the_protobuf_exporter(
    otlp_server: RunningServer, erin: ApiUser, llm: ToolCallingLLM
) -> None:
    from openinference.instrumentation.openai import OpenAIInstrumentor

    provider = tracer_provider(otlp_server.url, {"x-retrace-key": erin.key}, service="weather-agent")
    tracer = provider.get_tracer("weather-agent")
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)

    @contextlib.contextmanager
    def tool_span(name: str, arguments: dict[str, Any], call_id: str) -> Iterator[Callable[[Any], None]]:
        attributes = {
            "openinference.span.kind": "TOOL",
            "tool.name": name,
            "tool_call.id": call_id,
            "input.value": json.dumps(arguments),
            "input.mime_type": "application/json",
        }
        with tracer.start_as_current_span(name, attributes=attributes) as span:
            yield lambda result: span.set_attributes(
                {"output.value": json.dumps(result), "output.mime_type": "application/json"}
            )

    try:
        with tracer.start_as_current_span(
            "weather-agent", attributes={"openinference.span.kind": "AGENT", "input.value": QUESTION}
        ) as root:
            run = run_weather_agent(openai_client(llm), tool_span=tool_span)
            root.set_attribute("output.value", run.answer)
        trace_id = format(root.get_span_context().trace_id, "032x")
        assert provider.force_flush()
    finally:
        instrumentor.uninstrument()
        provider.shutdown()

    trace = stored_trace(erin, trace_id)
    check_weather_run(trace, run, root_name="weather-agent")
    assert trace["input"] == QUESTION and trace["output"] == run.answer
    assert trace["metadata"]["service.name"] == "weather-agent"
    plan = by_type(trace, "llm_call")[0]
    assert plan["metadata"]["kind"] == "LLM"
    assert plan["metadata"]["provider"] == "openai"
    assert plan["metadata"]["tool_schemas"] == {"get_weather": WEATHER_TOOL["function"]["parameters"]}
    assert plan["metadata"]["sampling"] == {"temperature": 0.2}
    assert by_type(trace, "tool_call")[0]["metadata"]["tool_call_id"] == run.tool_call_id
    replay_llm_call(erin, llm, trace, tools=True)


def test_official_genai_instrumentation_with_messages_as_log_events(
    otlp_server: RunningServer, erin: ApiUser, llm: ToolCallingLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "event_only")
    headers = {"authorization": f"Bearer {erin.key}"}
    provider = tracer_provider(otlp_server.url, headers, service="genai-agent")
    logs = LoggerProvider(resource=Resource.create({"service.name": "genai-agent"}))
    logs.add_log_record_processor(
        BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{otlp_server.url}/v1/logs", headers=headers))
    )
    tracer = provider.get_tracer("genai-agent")
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider, logger_provider=logs)

    @contextlib.contextmanager
    def tool_span(name: str, arguments: dict[str, Any], call_id: str) -> Iterator[Callable[[Any], None]]:
        attributes = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "gen_ai.tool.call.id": call_id,
            "gen_ai.tool.call.arguments": json.dumps(arguments),
        }
        with tracer.start_as_current_span(f"execute_tool {name}", attributes=attributes) as span:
            yield lambda result: span.set_attribute("gen_ai.tool.call.result", json.dumps(result))

    try:
        with tracer.start_as_current_span(
            "invoke_agent weather",
            attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "weather"},
        ) as root:
            run = run_weather_agent(openai_client(llm), tool_span=tool_span)
        trace_id = format(root.get_span_context().trace_id, "032x")
        # Spans first or log events first: both orders end in the same spans.
        assert provider.force_flush()
        assert logs.force_flush()
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
        logs.shutdown()

    trace = stored_trace(erin, trace_id)
    check_weather_run(trace, run, root_name="invoke_agent weather")
    plan = by_type(trace, "llm_call")[0]
    assert plan["name"] == f"chat {MODEL}"
    assert plan["metadata"]["kind"] == "chat"
    assert plan["metadata"]["provider"] == "openai"
    assert plan["metadata"]["otel_log_events"] == ["gen_ai.client.inference.operation.details"]
    assert by_type(trace, "tool_call")[0]["metadata"]["tool_call_id"] == run.tool_call_id
    assert by_type(trace, "action")[0]["agent_id"] == "weather"
    # This instrumentation records no tool definitions, so the step that called a tool cannot be
    # re-run on the server; the answer step can, from its recorded messages.
    replay_llm_call(erin, llm, trace, step=1, tools=False)


def test_langfuse_sdk_records_unchanged_into_retrace(
    otlp_server: RunningServer, erin: ApiUser, llm: ToolCallingLLM
) -> None:
    env = {
        **os.environ,
        "LANGFUSE_HOST": otlp_server.url,
        "LANGFUSE_PUBLIC_KEY": "pk-lf-anything",
        "LANGFUSE_SECRET_KEY": erin.key,
        "LLM_URL": llm.url,
    }
    done = subprocess.run(
        [sys.executable, "-m", "tests.otlp.langfuse_agent"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["authenticated"] is True
    assert report["problems"] == [], "the SDK logged no warning or error"

    trace = stored_trace(erin, report["trace_id"])
    run = Run(
        question=QUESTION, answer=report["answer"], tool_call_id=report["tool_call_id"], first_request={}
    )
    check_weather_run(trace, run, root_name="weather-agent")
    plan = by_type(trace, "llm_call")[0]
    assert plan["metadata"]["kind"] == "generation"
    assert plan["metadata"]["otel"]["scope"] == "langfuse-sdk"
    assert plan["metadata"]["tool_schemas"] == {"get_weather": WEATHER_TOOL["function"]["parameters"]}
    replay_llm_call(erin, llm, trace, tools=True)


def test_hand_written_otlp_json(otlp_server: RunningServer, erin: ApiUser, llm: ToolCallingLLM) -> None:
    trace, root, plan_id, tool_id, answer_id = (
        b.trace_id(),
        b.span_id(),
        b.span_id(),
        b.span_id(),
        b.span_id(),
    )
    ask = [{"role": "user", "parts": [{"type": "text", "content": QUESTION}]}]
    system = json.dumps([{"type": "text", "content": SYSTEM}])
    call = {"type": "tool_call", "id": "call_7", "name": "get_weather", "arguments": {"city": "Paris"}}
    definitions = json.dumps([{"type": "function", **WEATHER_TOOL["function"]}])
    llm_attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": MODEL,
        "gen_ai.request.temperature": 0.2,
        "gen_ai.system_instructions": system,
        "gen_ai.tool.definitions": definitions,
    }
    answer_text = "Light layers: it is 21 C and clear in Paris."
    spans = [
        b.span(
            trace,
            answer_id,
            "chat answer",
            parent=root,
            start_s=3,
            end_s=4,
            attributes={
                **llm_attributes,
                "gen_ai.input.messages": json.dumps(
                    [
                        *ask,
                        {"role": "assistant", "parts": [call]},
                        {
                            "role": "tool",
                            "parts": [{"type": "tool_call_response", "id": "call_7", "response": WEATHER}],
                        },
                    ]
                ),
                "gen_ai.output.messages": json.dumps(
                    [{"role": "assistant", "parts": [{"type": "text", "content": answer_text}]}]
                ),
                "gen_ai.usage.input_tokens": 60,
                "gen_ai.usage.output_tokens": 12,
            },
        ),
        b.span(
            trace,
            plan_id,
            "chat plan",
            parent=root,
            start_s=1,
            end_s=2,
            attributes={
                **llm_attributes,
                "gen_ai.input.messages": json.dumps(ask),
                "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [call]}]),
                "gen_ai.usage.input_tokens": 40,
                "gen_ai.usage.output_tokens": 9,
            },
        ),
        b.span(
            trace,
            tool_id,
            "execute_tool get_weather",
            parent=root,
            start_s=2.2,
            end_s=2.5,
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "get_weather",
                "gen_ai.tool.call.id": "call_7",
                "gen_ai.tool.call.arguments": json.dumps({"city": "Paris"}),
                "gen_ai.tool.call.result": json.dumps(WEATHER),
            },
        ),
    ]
    root_span = b.span(
        trace,
        root,
        "weather-agent",
        start_s=0.5,
        end_s=4.5,
        attributes={"gen_ai.operation.name": "invoke_agent"},
    )
    # Children first, in one export; the root later, in another.
    for part in (spans, [root_span]):
        r = httpx.post(
            f"{otlp_server.url}/v1/traces",
            content=b.dumps(b.export(part)),
            headers={"content-type": "application/json", "x-retrace-key": erin.key},
        )
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        assert r.json() == {}
    stored = stored_trace(erin, trace)
    run = Run(question=QUESTION, answer=answer_text, tool_call_id="call_7", first_request={})
    check_weather_run(stored, run, root_name="weather-agent")
    assert stored["started_at"] == "2026-01-01T00:00:00.500000Z"
    assert stored["ended_at"] == "2026-01-01T00:00:04.500000Z"
    replay_llm_call(erin, llm, stored, tools=True)
