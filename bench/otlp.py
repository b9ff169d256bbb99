"""OTLP ingest throughput: clients sending protobuf exports of OpenInference LLM spans.

Each export holds `--spans` LLM spans of one new trace, as OpenInference's OpenAI instrumentation
records them (about 1 KB of attributes each, distinct chat text). The server runs on its shipped
defaults (`_server.serve`), and in the same run the ceiling takes the same requests: a no-op route
on the same HTTP stack (`_server.ceiling`).

python bench/otlp.py [--database-url URL] [--clients 4] [--spans 100] [--exports 1500] [--rounds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import sys
import tempfile
import time
from collections.abc import Iterator

import httpx
import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

import _load as load
from _server import BenchServer, ceiling, cpu_seconds, serve, settings_line
from text import ChatText

SYSTEM = "You are the support agent of an online shop. Be brief, check orders with tools, never guess."
BASE_NS = 1_767_225_600_000_000_000
# The trace and span ids of a prepared export share a 4-byte prefix of bytes that never occur in
# UTF-8 text, so one bytes.replace gives it fresh ids; every send takes the next prefix.
PREFIX_BYTES = range(0xF8, 0x100)
DISTINCT_EXPORTS = 300


def _kv(key: str, value: str | int) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def make_export(text: ChatText, rng: random.Random, spans: int) -> tuple[bytes, bytes]:
    """(protobuf export of one trace, the prefix its ids share)."""
    prefix = bytes(rng.choice(PREFIX_BYTES) for _ in range(4))
    trace_id = prefix + rng.randbytes(12)
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(_kv("service.name", "support-agent"))
    scope = resource_spans.scope_spans.add()
    scope.scope.name = "openinference.instrumentation.openai"
    for index in range(spans):
        question, answer = text.message(220), text.message(160)
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
        attributes: dict[str, str | int] = {
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
            "llm.input_messages.0.message.content": SYSTEM,
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
    body = request.SerializeToString()
    assert body.count(prefix) == 3 * spans - 1, "the id prefix must occur only in ids"
    return body, prefix


def attribute_bytes(body: bytes) -> int:
    request = ExportTraceServiceRequest.FromString(body)
    spans = request.resource_spans[0].scope_spans[0].spans
    return sum(kv.ByteSize() for span in spans for kv in span.attributes) // len(spans)


_FRESH = itertools.count(random.Random().randrange(2**30) + 2**31)


def sends(exports: list[tuple[bytes, bytes]], count: int) -> Iterator[bytes]:
    """`count` export bodies, each with ids never sent before."""
    for index in range(count):
        template, prefix = exports[index % len(exports)]
        yield template.replace(prefix, next(_FRESH).to_bytes(4, "big"))


async def run_clients(
    url: str, key: str, bodies: Iterator[bytes], *, clients: int, ceiling: bool
) -> tuple[int, int, float]:
    """Posts every body once over `clients` connections: (stored, refused, seconds). The server
    stores an export whole when it answers 200 with an empty ExportTraceServiceResponse."""

    def stored_when(status: int, answer: bytes) -> bool:
        return (ceiling and 200 <= status < 300) or (status == 200 and answer == b"")

    return await load.run_clients(
        url,
        key,
        bodies,
        clients=clients,
        path="/v1/traces",
        content_type="application/x-protobuf",
        stored_when=stored_when,
    )


def _stored_traces(server: BenchServer) -> int:
    answer = httpx.get(
        f"{server.url}/api/v1/traces", params={"limit": 1}, headers={"x-retrace-key": server.key}
    )
    return int(answer.json()["total"])


def measure(
    target: BenchServer, exports: list[tuple[bytes, bytes]], args: argparse.Namespace, *, is_ceiling: bool
) -> dict[str, float]:
    cpu_before, client_before = cpu_seconds(target.pid), time.process_time()
    stored, refused, elapsed = asyncio.run(
        run_clients(
            target.url, target.key, sends(exports, args.exports), clients=args.clients, ceiling=is_ceiling
        )
    )
    spans = stored * args.spans
    thousands = max(spans / 1000, 1e-9)
    return {
        "spans_per_s": spans / elapsed,
        "exports": stored,
        "refused": refused,
        "seconds": elapsed,
        "server_cpu_per_1k": (cpu_seconds(target.pid) - cpu_before) / thousands,
        "client_cpu_per_1k": (time.process_time() - client_before) / thousands,
    }


def _line(name: str, f: dict[str, float]) -> str:
    return (
        f"{name}: {f['spans_per_s']:,.0f} spans/s ({f['exports']:,.0f} exports in {f['seconds']:.1f} s, "
        f"{f['refused']:,.0f} refused) | server CPU {f['server_cpu_per_1k'] * 1000:.0f} ms per 1k spans "
        f"| client {f['client_cpu_per_1k'] * 1000:.0f} ms per 1k"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=None, help="default: a new SQLite file")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--spans", type=int, default=100, help="LLM spans per export (one trace)")
    parser.add_argument("--exports", type=int, default=1500, help="exports per measurement")
    parser.add_argument("--rounds", type=int, default=1, help="server and ceiling, alternately")
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="a RETRACE_ setting to change"
    )
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.set)

    distinct = min(DISTINCT_EXPORTS, args.exports)
    print(f"making {distinct} distinct exports of {args.spans} spans ...", file=sys.stderr)
    text, rng = ChatText(), random.Random(14)
    exports = [make_export(text, rng, args.spans) for _ in range(distinct)]
    size_kb = sum(len(body) for body, _ in exports) / len(exports) / 1024
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{tmp}/otlp.db"
        with serve(url, env=env) as server, ceiling() as no_op:
            warm = argparse.Namespace(**{**vars(args), "exports": max(args.exports // 20, 1)})
            measure(server, exports, warm, is_ceiling=False)
            measure(no_op, exports, warm, is_ceiling=True)
            before = _stored_traces(server)
            results: list[tuple[str, dict[str, float]]] = []
            for _ in range(args.rounds):
                results.append(("server", measure(server, exports, args, is_ceiling=False)))
                results.append(("ceiling", measure(no_op, exports, args, is_ceiling=True)))
            read_back = _stored_traces(server) - before

    backend = url.split(":", 1)[0].split("+")[0]
    print(
        f"backend={backend} clients={args.clients} spans/export={args.spans} "
        f"export={size_kb:.0f} KB protobuf ({attribute_bytes(exports[0][0])} B of attributes per span, "
        f"{distinct} distinct exports sent with fresh ids) exports/round={args.exports} rounds={args.rounds}"
    )
    print(settings_line(server.env))
    for name, figures in results:
        print(_line(name, figures))
    served = [f["spans_per_s"] for name, f in results if name == "server"]
    ceilings = [f["spans_per_s"] for name, f in results if name == "ceiling"]
    mean_served, mean_ceiling = sum(served) / len(served), sum(ceilings) / len(ceilings)
    print(
        f"OTLP ingest: {mean_served:,.0f} spans/s = {mean_served / mean_ceiling:.0%} of the ceiling "
        f"({mean_ceiling:,.0f} spans/s, a no-op route on the same HTTP stack, same load)"
    )
    answered = sum(int(f["exports"]) for name, f in results if name == "server")
    print(f"traces read back after the run: {read_back:,} of {answered:,} exports answered as stored")


if __name__ == "__main__":
    main()
