"""The stream protocol frame by frame, as a raw WebSocket client speaks it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from retrace.errors import classify_server_signal

from retrace_server.config import Settings
from tests.stream.client import StreamClient
from tests.stream.support import get_trace
from tests.support.server import ApiUser, RunningServer, create_user, running_server


@pytest.fixture
def connect(server: RunningServer) -> Iterator[Callable[..., StreamClient]]:
    clients: list[StreamClient] = []

    def _connect(url: str | None = None) -> StreamClient:
        client = StreamClient(url or server.url)
        clients.append(client)
        return client

    yield _connect
    for client in clients:
        client.close()


def trace_started(trace_id: str, **over: Any) -> dict[str, Any]:
    return {
        "id": trace_id,
        "name": "raw-agent",
        "status": "running",
        "started_at": "2026-11-28T10:00:00Z",
        **over,
    }


def span_started(trace_id: str, span_id: str, second: int = 1, **over: Any) -> dict[str, Any]:
    return {
        "id": span_id,
        "trace_id": trace_id,
        "span_type": "llm_call",
        "name": "openai.chat.completions.create",
        "model": "gpt-4o-mini",
        "input": [{"role": "user", "content": "hi"}],
        "input_tokens": 12,
        "started_at": f"2026-11-28T10:00:0{second}Z",
        **over,
    }


def span_ended(trace_id: str, span_id: str, second: int = 2, **over: Any) -> dict[str, Any]:
    return {
        "id": span_id,
        "trace_id": trace_id,
        "ended_at": f"2026-11-28T10:00:0{second}Z",
        "output": "hello",
        "output_tokens": 3,
        "duration_ms": 1000,
        **over,
    }


def test_auth_then_each_frame_is_acknowledged_after_it_is_stored(
    connect: Callable[..., StreamClient], alice: ApiUser
) -> None:
    client = connect()
    hello = client.auth(alice.key)
    assert hello["type"] == "auth_ok"
    trace_id, span_id = str(uuid.uuid4()), str(uuid.uuid4())
    seq = client.frame("trace_started", trace_started(trace_id, project_id="p1"))
    assert client.receive() == {"type": "ack", "seq": seq, "id": trace_id}
    seq = client.frame("span_started", span_started(trace_id, span_id))
    assert client.receive() == {"type": "ack", "seq": seq, "id": span_id}

    running = get_trace(alice.client, trace_id)
    assert running is not None
    assert running["status"] == "running"
    assert running["project_id"] == "p1"
    assert running["spans"][0]["output"] is None

    seq = client.frame("span_ended", span_ended(trace_id, span_id))
    assert client.receive()["seq"] == seq
    seq = client.frame(
        "trace_ended",
        {
            "id": trace_id,
            "status": "completed",
            "output": "done",
            "ended_at": "2026-11-28T10:00:05Z",
            "span_count": 1,
        },
    )
    assert client.receive()["seq"] == seq

    trace = get_trace(alice.client, trace_id)
    assert trace is not None
    assert trace["status"] == "completed"
    assert trace["output"] == "done"
    assert trace["total_duration_ms"] == 5000
    assert trace["total_tokens"] == 15
    (span,) = trace["spans"]
    assert span["input"] == [{"role": "user", "content": "hi"}]
    assert (span["output"], span["input_tokens"], span["output_tokens"]) == ("hello", 12, 3)


def test_resent_and_out_of_order_frames_are_stored_once(
    connect: Callable[..., StreamClient], alice: ApiUser
) -> None:
    client = connect()
    client.auth(alice.key)
    trace_id, first, second = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    frames = [
        ("trace_started", trace_started(trace_id)),
        ("span_started", span_started(trace_id, first)),
        ("span_ended", span_ended(trace_id, first)),
        # The end of `second` before its start, as after a reconnection to another process.
        ("span_ended", span_ended(trace_id, second, second=4, output="later")),
        ("span_started", span_started(trace_id, second, second=3, name="lookup", span_type="tool_call")),
        ("trace_ended", {"id": trace_id, "status": "completed", "ended_at": "2026-11-28T10:00:05Z"}),
    ]
    for _ in range(2):
        for kind, data in frames:
            client.frame(kind, data)
        assert [client.receive()["type"] for _ in frames] == ["ack"] * len(frames)

    trace = get_trace(alice.client, trace_id)
    assert trace is not None
    assert trace["status"] == "completed"
    assert trace["span_count"] == 2
    assert [(s["name"], s["span_type"], s["output"]) for s in trace["spans"]] == [
        ("openai.chat.completions.create", "llm_call", "hello"),
        ("lookup", "tool_call", "later"),
    ]
    assert trace["spans"][1]["started_at"].startswith("2026-11-28T10:00:03")


def test_malformed_frames_get_errors_and_lose_nothing(
    connect: Callable[..., StreamClient], alice: ApiUser
) -> None:
    client = connect()
    client.auth(alice.key)
    trace_id, span_id = str(uuid.uuid4()), str(uuid.uuid4())
    client.frame("trace_started", trace_started(trace_id))
    assert client.receive()["type"] == "ack"

    client.send("{not json")
    assert client.receive() == {"type": "error", "error": "Invalid JSON frame"}
    client.send("[1, 2]")
    assert "JSON object" in client.receive()["error"]
    client.send({"type": "teleport", "seq": 99})
    unknown = client.receive()
    assert unknown["seq"] == 99 and "Unknown frame type 'teleport'" in unknown["error"]
    bad_seq = client.frame("span_started", span_started(trace_id, span_id, started_at="yesterday"))
    bad = client.receive()
    assert bad["type"] == "error" and bad["seq"] == bad_seq
    assert "data.started_at" in bad["error"]
    unknown_trace = str(uuid.uuid4())
    orphan = client.frame("span_started", span_started(unknown_trace, str(uuid.uuid4())))
    refused = client.receive()
    assert refused["type"] == "error" and refused["seq"] == orphan
    assert refused["error"] == f"Trace {unknown_trace!r} not found: send its trace_started frame first"

    good = client.frame("span_started", span_started(trace_id, span_id))
    assert client.receive() == {"type": "ack", "seq": good, "id": span_id}
    client.send({"type": "ping"})
    assert client.receive() == {"type": "pong"}
    trace = get_trace(alice.client, trace_id)
    assert trace is not None
    assert [s["id"] for s in trace["spans"]] == [span_id]


def test_another_users_trace_cannot_be_written(
    connect: Callable[..., StreamClient], alice: ApiUser, bob: ApiUser
) -> None:
    """Trace ids are per user: Bob streaming Alice's id writes a trace of his own."""
    trace_id = str(uuid.uuid4())
    alice_stream, bob_stream = connect(), connect()
    alice_stream.auth(alice.key)
    bob_stream.auth(bob.key)
    alice_stream.frame("trace_started", trace_started(trace_id))
    assert alice_stream.receive()["type"] == "ack"

    bob_stream.frame("span_started", span_started(trace_id, str(uuid.uuid4())))
    assert bob_stream.receive()["error"] == (
        f"Trace {trace_id!r} not found: send its trace_started frame first"
    )
    bob_stream.frame("trace_started", trace_started(trace_id))
    assert bob_stream.receive()["type"] == "ack"
    bob_stream.frame("span_started", span_started(trace_id, str(uuid.uuid4())))
    assert bob_stream.receive()["type"] == "ack"
    alices = get_trace(alice.client, trace_id)
    assert alices is not None and alices["spans"] == []
    bobs = get_trace(bob.client, trace_id)
    assert bobs is not None and len(bobs["spans"]) == 1


def test_bad_key_gets_an_error_frame_and_is_closed(connect: Callable[..., StreamClient]) -> None:
    client = connect()
    refused = client.auth("rt_live_not-a-key")
    assert refused == {"type": "error", "error": "Invalid API key"}
    assert client.close_code() == 4001
    no_auth = connect()
    no_auth.frame("trace_started", trace_started(str(uuid.uuid4())))
    assert "Authentication required" in no_auth.receive()["error"]


def test_failed_authentications_count_against_the_address_limit(
    make_settings: Callable[..., Settings],
) -> None:
    with running_server(make_settings(rate_limit_enabled=True, rate_limit_auth_failures=2)) as server:
        user = create_user(server)
        for _ in range(2):
            client = StreamClient(server.url)
            assert client.auth("rt_live_guess")["error"] == "Invalid API key"
            client.close()
        client = StreamClient(server.url)
        refused = client.auth(user.key)
        client.close()
    assert refused["type"] == "error"
    assert "too many failed authentication attempts" in refused["error"]


def test_a_streamed_trace_counts_as_one_write_when_it_starts(make_settings: Callable[..., Settings]) -> None:
    with running_server(make_settings(rate_limit_enabled=True, rate_limit_free_write=2)) as server:
        user = create_user(server)
        client = StreamClient(server.url)
        client.auth(user.key)
        stored = []
        for _ in range(2):
            trace_id = str(uuid.uuid4())
            client.frame("trace_started", trace_started(trace_id))
            for i in range(5):
                client.frame("span_started", span_started(trace_id, f"span-{i}"))
            assert [client.receive()["type"] for _ in range(6)] == ["ack"] * 6
            stored.append(trace_id)
        over = str(uuid.uuid4())
        client.frame("trace_started", trace_started(over))
        refused = client.receive()
        client.frame("span_started", span_started(stored[0], "span-late"))
        late = client.receive()
        client.close()

        assert refused["type"] == "error"
        assert classify_server_signal("error", refused["error"]).code == "rate_limited"
        assert late["type"] == "ack"
        assert get_trace(user.client, over) is None
        first = get_trace(user.client, stored[0])
        assert first is not None and first["span_count"] == 6


def test_server_pings_and_closes_a_silent_client(make_settings: Callable[..., Settings]) -> None:
    with running_server(make_settings(stream_ping_interval_s=0.2)) as server:
        user = create_user(server)
        client = StreamClient(server.url)
        client.auth(user.key)
        assert json.loads(client.ws.recv()) == {"type": "ping"}
        silent = client.receive()
        code = client.close_code()
        client.close()
    assert silent["type"] == "error" and "No frame or pong" in silent["error"]
    assert code == 4008
