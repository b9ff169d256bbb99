"""Runs to look at: a small nested agent run, and big generated ones."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any


def stamp(base: datetime, ms: float) -> str:
    return (base + timedelta(milliseconds=ms)).isoformat().replace("+00:00", "Z")


def nested_run(
    *, name: str = "support-agent", text: str = "Where is my order #4417?", status: str = "completed"
) -> dict[str, Any]:
    """agent (action) > plan (LLM with a tool call) > lookup_order (tool) > reply (LLM); one failing tool."""
    base = datetime.now(UTC) - timedelta(minutes=5)
    run_id = str(uuid.uuid4())
    ids = {key: f"{key}-{uuid.uuid4().hex[:8]}" for key in ("agent", "plan", "lookup", "refund", "reply")}
    system = "You are the support agent of a web shop. Be brief."
    spans: list[dict[str, Any]] = [
        {
            "id": ids["agent"], "span_type": "action", "name": "handle_ticket", "input": {"ticket": text},
            "output": "answered", "duration_ms": 2400,
            "started_at": stamp(base, 0), "ended_at": stamp(base, 2400),
        },
        {
            "id": ids["plan"], "parent_id": ids["agent"], "span_type": "llm_call", "name": "plan",
            "model": "gpt-4o-mini", "metadata": {"provider": "openai"},
            "input": {
                "messages": [{"role": "system", "content": system}, {"role": "user", "content": text}],
                "temperature": 0.2,
                "tools": [{"type": "function", "function": {"name": "lookup_order"}}],
            },
            "output": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "lookup_order", "arguments": '{"order": 4417}'}}
                ],
            },
            "input_tokens": 52, "output_tokens": 18, "cost": 0.00012, "duration_ms": 640,
            "started_at": stamp(base, 20), "ended_at": stamp(base, 660),
        },
        {
            "id": ids["lookup"], "parent_id": ids["agent"], "span_type": "tool_call", "name": "lookup_order",
            "input": {"order": 4417}, "output": {"status": "shipped", "carrier": "DHL", "eta": "2026-12-04"},
            "started_at": stamp(base, 700), "ended_at": stamp(base, 880),  # no duration_ms: from the times
        },
        {
            "id": ids["refund"], "parent_id": ids["lookup"], "span_type": "tool_call", "name": "check_refund",
            "input": {"order": 4417}, "error": "TimeoutError: refunds service did not answer in 5 s",
            "duration_ms": 90, "started_at": stamp(base, 760), "ended_at": stamp(base, 850),
        },
        {
            "id": ids["reply"], "parent_id": ids["agent"], "span_type": "llm_call", "name": "reply",
            "model": "gpt-4o-mini", "metadata": {"provider": "openai"},
            "input": {"messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": text},
                {"role": "tool", "tool_call_id": "call_1",
                 "content": '{"status": "shipped", "carrier": "DHL"}'},
            ]},
            "output": "Your order #4417 has shipped with DHL and should arrive on December 4.",
            "input_tokens": 88, "output_tokens": 21, "cost": 0.00019, "duration_ms": 1300,
            "started_at": stamp(base, 900), "ended_at": stamp(base, 2200),
        },
    ]  # fmt: skip
    return {
        "id": run_id,
        "name": name,
        "status": status,
        "input": text,
        "output": spans[-1]["output"] if status != "running" else None,
        "session_id": "sess-42",
        "started_at": stamp(base, 0),
        "ended_at": stamp(base, 2400) if status != "running" else None,
        "spans": spans,
    }


def wide_run(span_count: int, *, name: str = "crawler") -> dict[str, Any]:
    """A run of `span_count` spans: a root with groups of ten steps each (an LLM call and tool calls)."""
    base = datetime.now(UTC) - timedelta(hours=1)
    run_id = str(uuid.uuid4())
    spans: list[dict[str, Any]] = [
        {
            "id": "root",
            "span_type": "action",
            "name": "crawl",
            "started_at": stamp(base, 0),
            "duration_ms": span_count * 10,
        }
    ]
    group = "root"
    for i in range(1, span_count):
        if i % 10 == 1:
            group = f"step-{i}"
            spans.append({
                "id": group, "parent_id": "root", "span_type": "llm_call", "name": f"decide page {i // 10}",
                "model": "gpt-4o-mini",
                "input": {"messages": [{"role": "user", "content": f"Which link next after page {i}?"}]},
                "output": f"Follow link {i} of the index", "input_tokens": 40, "output_tokens": 9,
                "started_at": stamp(base, i * 10), "duration_ms": 60,
            })  # fmt: skip
            continue
        spans.append({
            "id": f"s-{i}", "parent_id": group, "span_type": "tool_call", "name": f"fetch_url {i}",
            "input": {"url": f"https://example.com/page/{i}"}, "output": f"<html>page {i}</html>",
            "started_at": stamp(base, i * 10), "duration_ms": 8, "error": "HTTP 503" if i % 97 == 0 else None,
        })  # fmt: skip
    return {"id": run_id, "name": name, "status": "completed", "started_at": stamp(base, 0),
            "ended_at": stamp(base, span_count * 10), "spans": spans}  # fmt: skip
