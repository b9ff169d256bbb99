"""The OTLP/HTTP receivers' answers: encodings, partial success, refusals, limits, and arrival order."""

from __future__ import annotations

import gzip
import random
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from retrace_server.config import Settings
from retrace_server.otlp import decode
from tests.otlp import bodies as b
from tests.otlp.conftest import stored_trace
from tests.support.server import ApiUser, RunningServer, create_user, running_server

PROTOBUF = {"content-type": "application/x-protobuf"}
JSON = {"content-type": "application/json"}


def as_protobuf(document: dict[str, Any]) -> bytes:
    """The same export in protobuf (OTLP/JSON and protobuf describe one message)."""
    return decode.decode_traces(b.dumps(document), "json").SerializeToString()


def post(user: ApiUser, body: bytes, headers: dict[str, str], path: str = "/v1/traces") -> httpx.Response:
    return user.client.post(path, content=body, headers=headers)


def status_message(response: httpx.Response) -> tuple[int, str]:
    """(gRPC code, message) of a protobuf `google.rpc.Status` answer."""
    raw = response.content
    assert raw[0] == 0x08
    code, index = raw[1], 2
    assert raw[index] == 0x12
    length, shift, index = 0, 0, index + 1
    while True:
        byte = raw[index]
        length |= (byte & 0x7F) << shift
        index += 1
        shift += 7
        if not byte & 0x80:
            break
    return code, raw[index : index + length].decode()


def trace_ids(user: ApiUser) -> list[str]:
    return [t["id"] for t in user.client.get("/api/v1/traces", params={"limit": 100}).json()["data"]]


def simple_trace(children: int = 2) -> tuple[str, list[dict[str, Any]]]:
    trace, root = b.trace_id(), b.span_id()
    spans = [b.span(trace, root, "root", end_s=10)]
    spans += [
        b.span(trace, b.span_id(), f"step {i}", parent=root, start_s=i + 1, end_s=i + 2)
        for i in range(children)
    ]
    return trace, spans


def test_protobuf_and_json_answer_in_their_own_encoding(erin: ApiUser) -> None:
    trace, spans = simple_trace()
    r = post(erin, as_protobuf(b.export(spans)), PROTOBUF)
    assert r.status_code == 200, r.content
    assert r.headers["content-type"] == "application/x-protobuf"
    answer = ExportTraceServiceResponse.FromString(r.content)
    assert not answer.HasField("partial_success")
    assert [s["name"] for s in stored_trace(erin, trace)["spans"]] == ["root", "step 0", "step 1"]

    other, spans = simple_trace()
    r = post(erin, gzip.compress(b.dumps(b.export(spans))), {**JSON, "content-encoding": "gzip"})
    assert (r.status_code, r.headers["content-type"], r.json()) == (200, "application/json", {})
    assert stored_trace(erin, other)["span_count"] == 3


def test_invalid_spans_are_refused_and_the_rest_stored(erin: ApiUser) -> None:
    trace, spans = simple_trace()
    bad = [
        b.span(trace, "", "no id"),
        b.span(trace, "abcd", "short id"),
        b.span("12" * 8, b.span_id(), "short trace"),
    ]
    r = post(erin, as_protobuf(b.export(spans + bad)), PROTOBUF)
    assert r.status_code == 200
    partial = ExportTraceServiceResponse.FromString(r.content).partial_success
    assert partial.rejected_spans == 3
    assert "spans[3]: spanId must be 8 bytes" in partial.error_message
    assert "spans[5]: traceId must be 16 bytes" in partial.error_message
    assert trace_ids(erin) == [trace]
    assert stored_trace(erin, trace)["span_count"] == 3

    r = post(erin, b.dumps(b.export([b.span("ab" * 15, b.span_id(), "odd")])), JSON)
    assert r.status_code == 200
    assert r.json()["partialSuccess"]["rejectedSpans"] == "1"
    assert trace_ids(erin) == [trace]


def test_undecodable_bodies_answer_400_and_store_nothing(erin: ApiUser) -> None:
    for body in (b"\x0a\xff\xff\xff\xff\x0f garbage", b"\xff\xfe not protobuf", b"\x0a\x02\x0a\x05"):
        r = post(erin, body, PROTOBUF)
        assert r.status_code == 400
        assert r.headers["content-type"] == "application/x-protobuf"
        code, message = status_message(r)
        assert code == 3 and "Invalid protobuf body" in message
    for body in (
        b"{",
        b"[]",
        b'{"resourceSpans": {"a": 1}}',
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": 5}]}]}]}',
    ):
        r = post(erin, body, JSON)
        assert r.status_code == 400, body
        assert r.json()["code"] == 3
        assert r.json()["error"] == r.json()["message"] and "Invalid JSON body" in r.json()["error"]
    r = post(erin, gzip.compress(b"x")[:-3], {**JSON, "content-encoding": "gzip"})
    assert r.status_code == 400 and "gzip" in r.json()["error"]
    assert trace_ids(erin) == []


def test_other_media_types_and_encodings_answer_415(erin: ApiUser) -> None:
    spans = simple_trace()[1]
    assert post(erin, b.dumps(b.export(spans)), {"content-type": "text/plain"}).status_code == 415
    r = post(erin, b.dumps(b.export(spans)), {**JSON, "content-encoding": "br"})
    assert r.status_code == 415 and "Content-Encoding" in r.json()["error"]
    assert trace_ids(erin) == []


def test_bodies_over_the_limit_answer_413(erin: ApiUser, otlp_server: RunningServer) -> None:
    limit = otlp_server.settings.max_body_bytes
    spans = simple_trace()[1]
    padding = "x" * (20 * 1024 * 1024)
    spans[1]["attributes"] = b.key_values({"input.value": padding})
    r = post(erin, as_protobuf(b.export(spans)), PROTOBUF)
    assert r.status_code == 413
    assert status_message(r)[1].startswith(f"Request body too large: the limit is {limit} bytes")
    # Within the limit on the wire, over it once inflated.
    inflating = gzip.compress(b'{"resourceSpans": [' + b" " * (8 * limit + 1) + b"]}")
    r = post(erin, inflating, {**JSON, "content-encoding": "gzip"})
    assert r.status_code == 413 and "decompressed" in r.json()["error"]
    assert trace_ids(erin) == []


def test_authentication(otlp_server: RunningServer, erin: ApiUser) -> None:
    spans = simple_trace()[1]
    body = b.dumps(b.export(spans))
    anonymous = httpx.post(f"{otlp_server.url}/v1/traces", content=body, headers=JSON)
    assert anonymous.status_code == 401 and "error" in anonymous.json()
    wrong = httpx.post(
        f"{otlp_server.url}/v1/traces", content=body, headers={**JSON, "authorization": "Bearer rt_nope"}
    )
    assert wrong.status_code == 401
    bearer = httpx.post(
        f"{otlp_server.url}/v1/traces", content=body, headers={**JSON, "authorization": f"Bearer {erin.key}"}
    )
    assert bearer.status_code == 200
    basic = httpx.post(
        f"{otlp_server.url}/api/public/otel/v1/traces",
        content=b.dumps(b.export(simple_trace()[1])),
        headers=JSON,
        auth=("pk-anything", erin.key),
    )
    assert basic.status_code == 200
    assert len(trace_ids(erin)) == 2
    projects = httpx.get(f"{otlp_server.url}/api/public/projects", auth=("pk", erin.key))
    assert projects.status_code == 200 and projects.json()["data"][0]["id"] == erin.id
    assert httpx.get(f"{otlp_server.url}/api/public/projects", auth=("pk", "rt_wrong")).status_code == 401
    assert httpx.get(f"{otlp_server.url}/api/public/health").json()["status"] == "OK"


def test_rate_limit_counts_one_export_as_one_write(make_settings: Callable[..., Settings]) -> None:
    with running_server(make_settings(rate_limit_enabled=True, rate_limit_free_write=2)) as server:
        user = create_user(server)
        for _ in range(2):
            many = b.export([span for _ in range(20) for span in simple_trace()[1]])
            r = post(user, as_protobuf(many), PROTOBUF)
            assert r.status_code == 200
        assert r.headers["x-ratelimit-remaining"] == "0"
        refused = post(user, as_protobuf(b.export(simple_trace()[1])), PROTOBUF)
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert status_message(refused)[0] == 8
        assert len(trace_ids(user)) == 40


def test_no_input_answers_a_5xx(erin: ApiUser) -> None:
    """Corrupted exports are refused or stored in part, never a server error."""
    generator = random.Random(14)
    spans = simple_trace(5)[1]
    valid = bytearray(as_protobuf(b.export(spans)))
    for _ in range(60):
        body = bytearray(valid)
        for _ in range(generator.randint(1, 8)):
            body[generator.randrange(len(body))] = generator.randrange(256)
        r = post(erin, bytes(body), PROTOBUF)
        assert r.status_code in (200, 400), (r.status_code, r.content)
    for path in ("kind", "status", "attributes", "startTimeUnixNano", "events", "flags"):
        for value in (-1, "x", [1], {"a": None}, "1" * 30):
            mutated = b.export([{**spans[0], path: value}])
            r = post(erin, b.dumps(mutated), JSON)
            assert r.status_code in (200, 400), (path, value, r.text)


def _normalised(trace: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in trace.items() if k not in ("created_at", "updated_at", "spans")}
    out["spans"] = sorted(
        ({k: v for k, v in s.items() if k not in ("created_at", "updated_at")} for s in trace["spans"]),
        key=lambda s: s["id"],
    )
    return out


def test_any_arrival_order_and_resending_store_the_same_trace(otlp_server: RunningServer) -> None:
    trace, root, tool = b.trace_id(), b.span_id(), b.span_id()
    spans = [
        b.span(
            trace, root, "agent", start_s=0, end_s=9, attributes={"input.value": "go", "session.id": "s1"}
        ),
        b.span(
            trace,
            b.span_id(),
            "plan",
            parent=root,
            start_s=1,
            end_s=2,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 10,
                "gen_ai.usage.output_tokens": 5,
            },
        ),
        b.span(
            trace, tool, "lookup", parent=root, start_s=3, end_s=4, attributes={"gen_ai.tool.name": "lookup"}
        ),
        b.span(trace, b.span_id(), "inner", parent=tool, start_s=3.5, end_s=3.8, error="timeout"),
    ]
    records = [b.log_record(trace, spans[1]["spanId"], "gen_ai.user.message", body={"content": "plan it"})]
    orders = [
        [[spans[0], spans[1], spans[2], spans[3]], records],
        [records, [spans[3]], [spans[2]], [spans[1]], [spans[0]]],
        [[spans[3], spans[1]], records, [spans[0]], [spans[2], spans[3]], [spans[0], spans[1]], records],
    ]
    results = []
    for order in orders:
        user = create_user(otlp_server)
        for batch in order:
            if batch is records:
                r = post(user, b.dumps(b.logs_export(batch)), JSON, path="/v1/logs")
            else:
                r = post(user, b.dumps(b.export(batch)), JSON)
            assert r.status_code == 200 and r.json() == {}, r.text
        results.append(_normalised(stored_trace(user, trace)))
    for other in results[1:]:
        assert other == results[0]
    final = results[0]
    assert final["status"] == "completed" and final["name"] == "agent" and final["session_id"] == "s1"
    assert final["span_count"] == 4
    plan = next(s for s in final["spans"] if s["name"] == "plan")
    assert plan["input"] == {"messages": [{"role": "user", "content": "plan it"}]}
    assert plan["span_type"] == "llm_call" and plan["cost"] > 0


def test_a_trace_without_its_root_is_running(erin: ApiUser) -> None:
    trace, root = b.trace_id(), b.span_id()
    r = post(erin, b.dumps(b.export([b.span(trace, b.span_id(), "step", parent=root)])), JSON)
    assert r.status_code == 200
    stored = stored_trace(erin, trace)
    assert stored["status"] == "running" and stored["ended_at"] is None
    r = post(erin, b.dumps(b.export([b.span(trace, root, "agent", error="boom", start_s=0, end_s=3)])), JSON)
    stored = stored_trace(erin, trace)
    assert (stored["status"], stored["error"], stored["name"]) == ("failed", "boom", "agent")


def test_traces_belong_to_their_sender(otlp_server: RunningServer, erin: ApiUser) -> None:
    frank = create_user(otlp_server)
    trace, spans = simple_trace()
    for user in (erin, frank):
        assert post(user, b.dumps(b.export(spans)), JSON).status_code == 200
    assert stored_trace(erin, trace)["span_count"] == stored_trace(frank, trace)["span_count"] == 3
    assert frank.client.delete(f"/api/v1/traces/{trace}").status_code == 204
    assert stored_trace(erin, trace)["span_count"] == 3


def test_log_exports_answer_in_kind(erin: ApiUser) -> None:
    trace, sid = b.trace_id(), b.span_id()
    document = b.logs_export(
        [
            b.log_record(trace, sid, "gen_ai.user.message", body={"content": "hi"}),
            b.log_record(trace, sid, "app.debug", body="x"),
        ]
    )
    body = decode.decode_logs(b.dumps(document), "json").SerializeToString()
    r = post(erin, body, PROTOBUF, path="/v1/logs")
    assert r.status_code == 200
    partial = ExportLogsServiceResponse.FromString(r.content).partial_success
    assert partial.rejected_log_records == 1 and "only GenAI events" in partial.error_message
    assert stored_trace(erin, trace)["spans"][0]["input"] == {"messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("path", ["/v1/traces", "/v1/logs", "/api/public/otel/v1/traces"])
def test_routes_are_documented(otlp_server: RunningServer, path: str) -> None:
    spec = httpx.get(f"{otlp_server.url}/openapi.json").json()
    operation = spec["paths"][path]["post"]
    assert operation["summary"]
    assert set(operation["requestBody"]["content"]) == {"application/x-protobuf", "application/json"}
    assert {"200", "400", "401", "413", "415", "429"} <= set(operation["responses"])


def test_nul_characters_are_stored_as_replacement_characters(erin: ApiUser) -> None:
    """PostgreSQL cannot store NUL in text or JSON; valid OTLP may carry it anywhere."""
    trace, sid = b.trace_id(), b.span_id()
    attributes = {"openinference.span.kind": "TOOL", "input.value": '{"q": "a\\u0000b"}', "x\x00": "\x00"}
    document = b.export([b.span(trace, sid, "na\x00me", attributes=attributes, error="bad\x00")])
    r = post(erin, as_protobuf(document), PROTOBUF)
    assert r.status_code == 200, r.content
    (span,) = stored_trace(erin, trace)["spans"]
    assert span["name"] == "na\ufffdme" and span["error"] == "bad\ufffd"
    assert span["input"] == {"q": "a\ufffdb"}
    assert span["metadata"]["attributes"] == {"x\ufffd": "\ufffd"}
