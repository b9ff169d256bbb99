"""The official `retrace-sdk` client, unchanged, records a run into this server over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.fakes.llm_server import FakeLLMServer
from tests.support.server import ApiUser, RunningServer

AGENT_SCRIPT = Path(__file__).with_name("agent_script.py")


def run_agent(server: RunningServer, user: ApiUser, llm_url: str, *, transport: str) -> dict[str, str]:
    env = {
        **os.environ,
        "RETRACE_BASE_URL": server.url,
        "RETRACE_API_KEY": user.key,
        "RETRACE_TRANSPORT": transport,
        "RETRACE_TELEMETRY": "0",
        "FAKE_LLM_URL": llm_url,
    }
    done = subprocess.run(
        [sys.executable, str(AGENT_SCRIPT)], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "rejected" not in done.stderr and "failed" not in done.stderr, done.stderr
    result: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_sdk_http_transport_records_whole_run(server: RunningServer, alice: ApiUser) -> None:
    with FakeLLMServer() as llm:
        result = run_agent(server, alice, llm.url, transport="http")
        assert len(llm.requests) == 2

    r = alice.client.get(f"/api/v1/traces/{result['trace_id']}")
    assert r.status_code == 200, r.text
    trace = r.json()
    assert trace["name"] == "order-support-agent"
    assert trace["status"] == "completed"
    assert trace["output"] == result["answer"]
    spans = trace["spans"]
    kinds = [(s["span_type"], s["name"]) for s in spans]
    assert sum(1 for kind, _ in kinds if kind == "llm_call") == 2
    assert ("tool_call", "lookup_order") in kinds
    tool = next(s for s in spans if s["name"] == "lookup_order")
    assert tool["output"] == {"status": "shipped", "eta_days": 2}
    llm_spans = [s for s in spans if s["span_type"] == "llm_call"]
    assert all(s["model"] == "gpt-4o-mini" for s in llm_spans)
    assert trace["span_count"] == len(spans)
    assert (
        trace["total_tokens"] == sum((s["input_tokens"] or 0) + (s["output_tokens"] or 0) for s in spans) > 0
    )
    assert trace["ended_at"] is not None
