"""One write path: the same rules whether a trace arrives by REST, by the stream, or in parts."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.stream.client import StreamClient
from tests.stream.support import get_trace
from tests.support.server import ApiUser, RunningServer

HUGE = 99999999999999999999999


@pytest.fixture
def stream(server: RunningServer, alice: ApiUser) -> Iterator[Callable[[], StreamClient]]:
    clients: list[StreamClient] = []

    def _open() -> StreamClient:
        client = StreamClient(server.url)
        assert client.auth(alice.key)["type"] == "auth_ok"
        clients.append(client)
        return client

    yield _open
    for client in clients:
        client.close()


def _span(**over: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "name": "chat",
        "span_type": "llm_call",
        "model": "gpt-4o-mini",
        "input": [{"role": "user", "content": "hello"}],
        "started_at": "2026-12-01T10:00:00Z",
        **over,
    }


def _acked(client: StreamClient, kind: str, data: dict[str, Any]) -> None:
    seq = client.frame(kind, data)
    answer = client.receive()
    assert answer == {"type": "ack", "seq": seq, "id": data["id"]}, answer


def test_a_span_in_parts_is_the_same_whatever_the_order_and_repeats(
    stream: Callable[[], StreamClient], alice: ApiUser
) -> None:
    client = stream()
    trace_id, span_id = str(uuid.uuid4()), str(uuid.uuid4())
    started = {**_span(id=span_id), "trace_id": trace_id}
    ended = {
        "id": span_id,
        "trace_id": trace_id,
        "output": "hi there",
        "ended_at": "2026-12-01T10:00:02Z",
        "duration_ms": 2000,
        "input_tokens": 100,
        "output_tokens": 20,
    }
    _acked(client, "trace_started", {"id": trace_id, "name": "parts", "started_at": "2026-12-01T10:00:00Z"})
    _acked(client, "span_ended", ended)  # the end first, as after a reconnection
    _acked(client, "span_started", started)
    _acked(client, "span_started", started)  # re-sent: must not wipe the output
    _acked(client, "span_ended", ended)
    trace = get_trace(alice.client, trace_id)
    assert trace is not None
    [span] = trace["spans"]
    assert span["output"] == "hi there" and span["name"] == "chat" and span["model"] == "gpt-4o-mini"
    assert span["started_at"] == "2026-12-01T10:00:00.000000Z"
    assert (span["input_tokens"], span["output_tokens"], span["duration_ms"]) == (100, 20, 2000)
    assert trace["span_count"] == 1 and trace["total_tokens"] == 120


def test_cost_is_estimated_from_the_price_table_when_none_is_reported(
    alice: ApiUser, stream: Callable[[], StreamClient]
) -> None:
    # gpt-4o-mini: $0.15 / $0.60 per million input / output tokens.
    estimated = _span(input_tokens=1_000_000, output_tokens=1_000_000)
    reported = _span(input_tokens=10, output_tokens=10, cost=0.5)
    unknown = _span(model="house-model-7", input_tokens=10, output_tokens=10)
    trace_id = str(uuid.uuid4())
    body = {"id": trace_id, "spans": [estimated, reported, unknown]}
    assert alice.client.post("/api/v1/traces", json=body).status_code == 201
    trace = alice.client.get(f"/api/v1/traces/{trace_id}").json()
    spans = {s["id"]: s for s in trace["spans"]}
    assert spans[estimated["id"]]["cost"] == pytest.approx(0.75)
    assert spans[estimated["id"]]["cost_source"] == "estimated"
    assert (spans[reported["id"]]["cost"], spans[reported["id"]]["cost_source"]) == (0.5, "reported")
    assert (spans[unknown["id"]]["cost"], spans[unknown["id"]]["cost_source"]) == (None, None)
    assert trace["total_cost"] == pytest.approx(1.25)

    # On the stream the model comes with the start and the tokens with the end.
    client = stream()
    streamed, span_id = str(uuid.uuid4()), str(uuid.uuid4())
    _acked(client, "trace_started", {"id": streamed})
    _acked(client, "span_started", {**_span(id=span_id, model="claude-3-5-haiku"), "trace_id": streamed})
    _acked(client, "span_ended", {"id": span_id, "trace_id": streamed, "input_tokens": 1_000_000})
    stored = get_trace(alice.client, streamed)
    assert stored is not None
    assert stored["spans"][0]["cost"] == pytest.approx(0.80)
    assert stored["spans"][0]["cost_source"] == "estimated"
    assert stored["total_cost"] == pytest.approx(0.80)


@pytest.mark.parametrize(
    ("span", "field"),
    [
        (_span(input_tokens=1180591620717411303424), "spans[0].input_tokens"),
        (_span(input_tokens=2**31), "spans[0].input_tokens"),
        (_span(input={"n": HUGE}), "spans[0].input"),
        (_span(metadata={"n": -HUGE}), "spans[0].metadata"),
        (_span(cost=1e300), "spans[0].cost"),
        (_span(ended_at="2026-12-01T09:59:00Z"), "spans[0].ended_at"),
    ],
)
def test_out_of_range_values_answer_400_naming_the_field_and_store_nothing(
    alice: ApiUser, span: dict[str, Any], field: str
) -> None:
    trace_id = str(uuid.uuid4())
    answer = alice.client.post("/api/v1/traces", json={"id": trace_id, "spans": [span]})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"].startswith(f"{field}: ")
    assert alice.client.get(f"/api/v1/traces/{trace_id}").status_code == 404


def test_the_largest_legal_values_add_up_without_overflow(alice: ApiUser) -> None:
    biggest = 2**31 - 1
    spans = [_span(input_tokens=biggest, output_tokens=biggest) for _ in range(3)]
    trace_id = str(uuid.uuid4())
    assert alice.client.post("/api/v1/traces", json={"id": trace_id, "spans": spans}).status_code == 201
    assert alice.client.get(f"/api/v1/traces/{trace_id}").json()["total_tokens"] == 6 * biggest


def test_a_trace_ending_before_it_started_is_refused(alice: ApiUser) -> None:
    trace_id = str(uuid.uuid4())
    early = {"id": trace_id, "started_at": "2026-12-01T10:00:00Z", "ended_at": "2026-12-01T09:00:00Z"}
    answer = alice.client.post("/api/v1/traces", json=early)
    assert answer.status_code == 400 and answer.json()["error"].startswith("ended_at: ")
    assert alice.client.post("/api/v1/traces", json={**early, "ended_at": None}).status_code == 201
    patched = alice.client.patch(f"/api/v1/traces/{trace_id}", json={"ended_at": "2026-12-01T09:00:00Z"})
    assert patched.status_code == 400
    assert alice.client.get(f"/api/v1/traces/{trace_id}").json()["ended_at"] is None


def test_the_stream_refuses_huge_numbers_by_name_and_stores_nothing(
    stream: Callable[[], StreamClient], alice: ApiUser
) -> None:
    client = stream()
    trace_id = str(uuid.uuid4())
    _acked(client, "trace_started", {"id": trace_id})
    # Written by hand: a JSON library would not keep the number exact.
    span = _span(trace_id=trace_id)
    seq = client.frame("span_started", {**span, "input": "PLACEHOLDER"})
    refusal = client.receive()
    assert refusal["type"] == "ack"  # the placeholder frame itself is fine
    data = f'{{"id": "{uuid.uuid4()}", "trace_id": "{trace_id}", "input": {{"n": {HUGE}}}}}'
    client.send(f'{{"type": "span_started", "seq": {seq + 1}, "data": {data}}}')
    refused = client.receive()
    assert refused["type"] == "error" and refused["seq"] == seq + 1
    assert refused["error"].startswith("Invalid span_started frame: data.input: ")
    assert "out of range" in refused["error"]
    trace = get_trace(alice.client, trace_id)
    assert trace is not None and len(trace["spans"]) == 1
