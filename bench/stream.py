"""Live stream throughput: concurrent official-SDK clients streaming runs over `/ws/v1/stream`.

Each client is its own process running the unchanged `retrace` SDK in its default WebSocket
mode; it records runs of N spans (a start and an end frame each) back to back, waiting for the
server to acknowledge a run's frames before starting the next, as an agent finishing one task
before the next would. Reports acknowledged spans per second over all clients.

    python bench/stream.py [--database-url URL] [--clients 20] [--runs 5] [--spans 100]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import httpx

from _server import cpu_seconds, percentile, rss_mb, serve

ACK_WAIT_S = 120.0


def client(runs: int, spans: int) -> None:
    """One SDK process: warm up, wait for `go` on stdin, stream the runs, print its timings."""
    import retrace
    from retrace.recorder import _get_shared_transport

    transport = _get_shared_transport()

    def wait_for_acks() -> bool:
        deadline = time.monotonic() + ACK_WAIT_S
        while transport.has_pending_data() and time.monotonic() < deadline:
            time.sleep(0.002)
        return not transport.has_pending_data()

    def record_run(steps: int) -> None:
        with retrace.record(name="bench-agent", input={"task": "triage the inbox"}) as run:
            for i in range(steps):
                span = run.start_span("lookup", span_type=retrace.SpanType.TOOL_CALL, input={"step": i})
                run.end_span(span, output={"hits": i, "note": "order shipped, arriving in two days"})

    record_run(1)
    wait_for_acks()
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.time()
    run_seconds = []
    acknowledged = True
    for _ in range(runs):
        clock = time.perf_counter()
        record_run(spans)
        acknowledged = wait_for_acks() and acknowledged
        run_seconds.append(time.perf_counter() - clock)
    print(
        json.dumps(
            {"started": started, "ended": time.time(), "runs": run_seconds, "acknowledged": acknowledged}
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=None, help="default: a new SQLite file")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--spans", type=int, default=100)
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client(args.runs, args.spans)
        return

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{tmp}/stream.db"
        with serve(url, env={"RETRACE_EMBEDDER": "none", "RETRACE_INDEXER_ENABLED": "false"}) as server:
            env = {
                **os.environ,
                "RETRACE_BASE_URL": server.url,
                "RETRACE_API_KEY": server.key,
                "RETRACE_TELEMETRY": "0",
            }
            command = [
                sys.executable,
                __file__,
                "--client",
                "--runs",
                str(args.runs),
                "--spans",
                str(args.spans),
            ]
            procs = [
                subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                for _ in range(args.clients)
            ]
            for proc in procs:
                assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            cpu_before = cpu_seconds(server.pid)
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write("go\n")
                proc.stdin.flush()
            results = [json.loads(proc.communicate(timeout=600)[0]) for proc in procs]
            server_cpu = cpu_seconds(server.pid) - cpu_before
            busy_rss = rss_mb(server.pid)
            stored = stored_spans(server.url, server.key)

    elapsed = max(r["ended"] for r in results) - min(r["started"] for r in results)
    streamed = args.clients * args.runs * args.spans
    run_ms = [s * 1000 for r in results for s in r["runs"]]
    backend = url.split(":", 1)[0]
    print(f"backend={backend} clients={args.clients} runs/client={args.runs} spans/run={args.spans}")
    print(f"spans={streamed} (frames={streamed * 2 + args.clients * args.runs * 2}) seconds={elapsed:.1f}")
    rate = streamed / elapsed
    print(f"stream: {rate:,.0f} spans/s acknowledged ({rate * 2:,.0f} span frames/s)")
    print(
        f"run of {args.spans} spans, start to last ack: p50 {percentile(run_ms, 50):.0f} ms, "
        f"p95 {percentile(run_ms, 95):.0f} ms"
    )
    print(
        f"every frame acknowledged: {all(r['acknowledged'] for r in results)}; "
        f"spans stored: {stored} of {streamed + args.clients}"
    )
    share = server_cpu / elapsed
    print(f"server: {server_cpu:.1f} CPU seconds ({share:.0%} of one core), RSS {busy_rss:.0f} MB")


def stored_spans(url: str, key: str) -> int:
    total = 0
    with httpx.Client(base_url=url, headers={"x-retrace-key": key}, timeout=60) as http:
        offset = 0
        while True:
            page = http.get("/api/v1/traces", params={"limit": 100, "offset": offset}).json()
            total += sum(t["span_count"] for t in page["data"])
            offset += 100
            if offset >= page["total"]:
                return total


if __name__ == "__main__":
    main()
