"""Forks benchmark: the diff of two 1,000-span traces, and the server's own cost per replayed span.

Runs a real server on a temporary SQLite database and a local fake LLM server (OpenAI
protocol); prints its figures. Targets: diff <= 100 ms; replay overhead <= 5 ms per span
beyond provider time (the time each span spent waiting on its provider call).
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.fakes.llm_server import FakeLLMServer
from tests.support.server import create_user, running_server

from retrace_server.config import Settings
from retrace_server.forks.diff import diff_traces

DIFF_SPANS = 1000
REPLAY_SPANS = 200


def _stamp(i: int) -> str:
    return (datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=i)).isoformat().replace("+00:00", "Z")


def _span(i: int, *, output: str, kind: str = "llm_call", name: str | None = None) -> dict[str, Any]:
    return {
        "id": f"s{i}-{uuid.uuid4().hex[:6]}",
        "span_type": kind,
        "name": name or f"step-{i % 7}",
        "model": "gpt-4o-mini",
        "input": {"messages": [{"role": "user", "content": f"question {i}"}]},
        "output": output,
        "input_tokens": 40,
        "output_tokens": 12,
        "cost": 0.00002,
        "duration_ms": 300,
        "started_at": _stamp(i),
        "ended_at": _stamp(i),
        "metadata": {},
        "error": None,
    }


def _diff_pair() -> tuple[dict[str, Any], dict[str, Any]]:
    """A replay of a 1,000-span run forked at step 100: every later output differs, 5 steps
    were inserted and 5 removed."""
    original = [_span(i, output=f"original answer {i}\nwith a second line") for i in range(DIFF_SPANS)]
    fork = []
    for i, span in enumerate(original):
        if i >= 100 and i % 150 == 0:
            continue
        out = span["output"] if i < 100 else f"new answer {i}\nwith a second line"
        fork.append({**span, "id": f"f{i}", "output": out, "output_tokens": 10})
        if i >= 100 and i % 150 == 75:
            fork.append(_span(i, output="extra", kind="tool_call", name="inserted"))
    meta = {"status": "completed", "total_tokens": 52_000, "total_cost": 0.02}
    return {"id": "a", **meta, "spans": original}, {"id": "b", **meta, "spans": fork}


def bench_diff() -> None:
    original, fork = _diff_pair()
    times = []
    for _ in range(15):
        start = time.perf_counter()
        result = diff_traces(original, fork)
        times.append((time.perf_counter() - start) * 1000)
    counts: dict[str, int] = {}
    for step in result["steps"]:
        counts[step["status"]] = counts.get(step["status"], 0) + 1
    print(
        f"diff of two {DIFF_SPANS}-span traces (compute): median {statistics.median(times):.1f} ms, "
        f"max {max(times):.1f} ms  steps={counts}"
    )


def bench_replay_and_endpoint() -> None:
    with tempfile.TemporaryDirectory() as tmp, FakeLLMServer() as llm:
        settings = Settings(
            _env_file=None,
            database_url=f"sqlite+aiosqlite:///{tmp}/bench.db",
            rate_limit_enabled=False,
            embedder="none",
            indexer_enabled=False,
            openai_base_url=f"{llm.url}/v1",
            openai_api_key="bench",
            replay_wait_s=600,
        )
        with running_server(settings) as server:
            user = create_user(server)
            spans = []
            for i in range(REPLAY_SPANS):
                kind = "tool_call" if i % 4 == 3 else "llm_call"
                spans.append(_span(i, output=f"answer {i} with enough words to be replaced", kind=kind))
                if kind == "llm_call" and i > 0:
                    previous = spans[i - 1]["output"]
                    spans[i]["input"]["messages"].insert(0, {"role": "assistant", "content": previous})
            trace_id = user.client.post("/api/v1/traces", json={"name": "bench", "spans": spans}).json()["id"]
            fork = user.client.post(
                "/api/v1/forks",
                json={"trace_id": trace_id, "span_id": spans[0]["id"], "modified_input": "a new question"},
            ).json()
            start = time.perf_counter()
            done = user.client.post(f"/api/v1/forks/{fork['id']}/replay").json()
            wall_ms = (time.perf_counter() - start) * 1000
            assert done["status"] == "completed", done
            result = user.client.get(f"/api/v1/traces/{done['result_trace_id']}").json()
            executed = [s for s in result["spans"] if s["metadata"]["replay"] == "executed"]
            provider_ms = sum(s["duration_ms"] for s in executed)
            overhead = (wall_ms - provider_ms) / len(result["spans"])
            print(
                f"replay of {len(result['spans'])} spans ({len(executed)} LLM calls): wall {wall_ms:.0f} ms, "
                f"provider {provider_ms} ms, server overhead {overhead:.2f} ms/span"
            )

            big = [_span(i, output=f"answer {i}") for i in range(DIFF_SPANS)]
            big_id = user.client.post("/api/v1/traces", json={"name": "big", "spans": big}).json()["id"]
            last = user.client.post(
                "/api/v1/forks",
                json={"trace_id": big_id, "span_id": big[-1]["id"], "modified_input": "changed"},
            ).json()
            assert user.client.post(f"/api/v1/forks/{last['id']}/replay").json()["status"] == "completed"
            times = []
            for _ in range(5):
                start = time.perf_counter()
                r = user.client.get(f"/api/v1/forks/{last['id']}/diff")
                times.append((time.perf_counter() - start) * 1000)
                assert r.status_code == 200
            print(
                f"GET /forks/{{id}}/diff over HTTP, two {DIFF_SPANS}-span traces on SQLite "
                f"(load + diff + JSON): median {statistics.median(times):.0f} ms"
            )


if __name__ == "__main__":
    bench_diff()
    bench_replay_and_endpoint()
