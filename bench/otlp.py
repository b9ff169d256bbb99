"""OTLP ingest throughput: clients sending protobuf exports of OpenInference LLM spans.

Each export holds `--spans` LLM spans of one new trace, as OpenInference's OpenAI instrumentation
records them (about 1 KB of attributes each, distinct text). The server runs on its defaults (rate
limits off as in every benchmark, the span indexer off unless --indexer). The ceiling is measured in
the same run: the same application and uvicorn stack answering the same requests from a route that
stores nothing.

python bench/otlp.py [--database-url URL] [--clients 4] [--spans 100] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from _server import BenchServer, _free_port, cpu_seconds, serve

CITIES = ["Paris", "Oslo", "Lima", "Osaka", "Quito", "Perth", "Accra", "Tunis", "Cusco", "Hanoi"]
ITEMS = ["order", "parcel", "refund", "invoice", "booking", "ticket", "voucher", "return"]
WORDS = [
    "customer",
    "asks",
    "about",
    "the",
    "delivery",
    "window",
    "and",
    "whether",
    "the",
    "courier",
    "can",
    "leave",
    "it",
    "with",
    "a",
    "neighbour",
    "because",
    "nobody",
    "is",
    "home",
    "on",
    "weekdays",
    "until",
    "the",
    "evening",
    "and",
    "the",
    "tracking",
    "page",
    "shows",
    "no",
    "update",
]
BASE_NS = 1_767_225_600_000_000_000
# A prepared export's trace and span ids share a 4-byte prefix of bytes that never occur in its
# (ASCII) text, so one bytes.replace gives it fresh ids: each send takes the next prefix.
PREFIX_BYTES = range(0xF8, 0x100)


def _kv(key: str, value: str | int) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def _prefix(rng: random.Random) -> bytes:
    return bytes(rng.choice(PREFIX_BYTES) for _ in range(4))


_SENT = itertools.count(random.Random().randrange(2**30) + 2**31)


def make_export(rng: random.Random, spans: int) -> tuple[bytes, bytes, int]:
    """(protobuf export, its id prefix, attribute bytes per span)."""
    prefix = _prefix(rng)
    trace_id = prefix + rng.randbytes(12)
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(_kv("service.name", "support-agent"))
    scope = resource_spans.scope_spans.add()
    scope.scope.name = "openinference.instrumentation.openai"
    attribute_bytes = 0
    for index in range(spans):
        city, item = rng.choice(CITIES), rng.choice(ITEMS)
        question = f"{item} {rng.randrange(10**6)} to {city}: {_text(rng, 40)}"
        answer = f"The {item} for {city} {_text(rng, 30)}"
        messages = [
            {"role": "system", "content": "You are a support agent."},
            {"role": "user", "content": question},
        ]
        attributes = {
            "openinference.span.kind": "LLM",
            "llm.system": "openai",
            "llm.model_name": "gpt-4o-mini",
            "input.value": orjson.dumps(
                {"model": "gpt-4o-mini", "messages": messages, "temperature": 0.2}
            ).decode(),
            "input.mime_type": "application/json",
            "output.value": answer,
            "llm.invocation_parameters": '{"model": "gpt-4o-mini", "temperature": 0.2}',
            "llm.input_messages.0.message.role": "system",
            "llm.input_messages.0.message.content": "You are a support agent.",
            "llm.input_messages.1.message.role": "user",
            "llm.input_messages.1.message.content": question,
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.content": answer,
            "llm.token_count.prompt": 120 + index,
            "llm.token_count.completion": 90,
            "llm.token_count.total": 210 + index,
        }
        span = scope.spans.add(
            trace_id=trace_id,
            span_id=prefix + index.to_bytes(4, "big"),
            parent_span_id=b"" if index == 0 else prefix + (0).to_bytes(4, "big"),
            name="ChatCompletion",
            kind=1,
            start_time_unix_nano=BASE_NS + index * 1_000_000_000,
            end_time_unix_nano=BASE_NS + index * 1_000_000_000 + 800_000_000,
        )
        span.attributes.extend(_kv(k, v) for k, v in attributes.items())
        attribute_bytes += sum(len(k) + len(str(v)) for k, v in attributes.items())
    body = request.SerializeToString()
    assert body.count(prefix) == 3 * spans - 1, "the id prefix must occur only in ids"
    return body, prefix, attribute_bytes // spans


async def _post(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, body: bytes
) -> tuple[int, bytes]:
    """One keep-alive HTTP/1.1 POST; a bare client keeps the load generator's own CPU cost low."""
    writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
    status_line = await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    return int(status_line.split()[1]), await reader.readexactly(length)


async def run_clients(
    url: str, key: str, exports: list[tuple[bytes, bytes, int]], *, clients: int, seconds: float
) -> tuple[int, int, float]:
    """(exports fully stored, exports refused in whole or part, seconds)."""
    host, port = url.removeprefix("http://").split(":")
    head = (
        f"POST /v1/traces HTTP/1.1\r\nHost: {host}\r\nx-retrace-key: {key}\r\n"
        "Content-Type: application/x-protobuf\r\nContent-Length: "
    ).encode()
    done = refused = 0
    stop_at = time.perf_counter() + seconds

    async def client(index: int) -> None:
        nonlocal done, refused
        reader, writer = await asyncio.open_connection(host, int(port))
        n = index
        while time.perf_counter() < stop_at:
            template, prefix, _ = exports[n % len(exports)]
            n += clients
            fresh = next(_SENT).to_bytes(4, "big")
            status, answer = await _post(reader, writer, head, template.replace(prefix, fresh))
            # A full success is an empty ExportTraceServiceResponse.
            if status == 200 and answer == b"":
                done += 1
            else:
                refused += 1
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    return done, refused, time.perf_counter() - started


@contextmanager
def noop_server(database_url: str) -> Iterator[BenchServer]:
    """The ceiling's server on a database of its own: uvicorn with the options `serve` uses."""
    env = {
        **os.environ,
        "RETRACE_DATABASE_URL": database_url,
        "RETRACE_RATE_LIMIT_ENABLED": "false",
        "RETRACE_LOG_LEVEL": "warning",
        "RETRACE_INDEXER_ENABLED": "false",
        "RETRACE_EMBEDDER": "none",
    }
    cli = [sys.executable, "-m", "retrace_server"]
    key = subprocess.run(
        [*cli, "keys", "create", "--user", "bench"], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    port = _free_port()
    command = [
        sys.executable, "-m", "uvicorn", "otlp_noop_app:create", "--factory",
        "--app-dir", str(Path(__file__).parent), "--port", str(port),
        "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    proc = subprocess.Popen(command, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the no-op server did not start")
            time.sleep(0.1)
        yield BenchServer(url=url, key=key, pid=proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _stored_traces(server: BenchServer) -> int:
    answer = httpx.get(
        f"{server.url}/api/v1/traces", params={"limit": 1}, headers={"x-retrace-key": server.key}
    )
    return int(answer.json()["total"])


def measure(
    server: BenchServer, exports: list[tuple[bytes, bytes, int]], args: argparse.Namespace
) -> tuple[int, int, int, float, float]:
    """(exports answered as stored, refused, traces read back, seconds, server CPU share)."""
    asyncio.run(run_clients(server.url, server.key, exports, clients=args.clients, seconds=2))
    before = _stored_traces(server)
    cpu_before = cpu_seconds(server.pid)
    done, refused, elapsed = asyncio.run(
        run_clients(server.url, server.key, exports, clients=args.clients, seconds=args.seconds)
    )
    cpu = (cpu_seconds(server.pid) - cpu_before) / elapsed
    return done, refused, _stored_traces(server) - before, elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=None, help="default: a new SQLite file")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--spans", type=int, default=100, help="LLM spans per export (one trace)")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--indexer", action="store_true", help="run the span indexer while ingesting")
    args = parser.parse_args()

    rng = random.Random(14)
    exports = [make_export(rng, args.spans) for _ in range(32)]
    export_kb = sum(len(e[0]) for e in exports) / len(exports) / 1024
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{tmp}/otlp.db"
        env = {"RETRACE_INDEXER_ENABLED": "true" if args.indexer else "false"}
        if not args.indexer:
            env["RETRACE_EMBEDDER"] = "none"
        with serve(url, env=env) as server:
            done, refused, stored, elapsed, cpu = measure(server, exports, args)
        with noop_server(f"sqlite+aiosqlite:///{tmp}/ceiling.db") as ceiling_server:
            ceiling_done, _, _, ceiling_elapsed, ceiling_cpu = measure(ceiling_server, exports, args)

    backend = url.split(":", 1)[0]
    print(
        f"backend={backend} clients={args.clients} spans/export={args.spans} seconds={args.seconds:g} "
        f"export={export_kb:.0f} KB protobuf, {exports[0][2]} B of attributes per span, "
        f"server defaults (rate limits off), indexer {'on' if args.indexer else 'off'}"
    )
    print(f"exports answered 200 and fully stored: {done}, refused: {refused}")
    print(f"traces stored (read back): {stored} of {done + refused} answered")
    print(f"OTLP ingest: {done * args.spans / elapsed:,.0f} spans/s, server at {cpu:.0%} of one core")
    print(
        f"ceiling (same stack, no-op route): {ceiling_done * args.spans / ceiling_elapsed:,.0f} spans/s, "
        f"server at {ceiling_cpu:.0%} of one core"
    )


if __name__ == "__main__":
    main()
