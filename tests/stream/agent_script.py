"""An agent recorded by the official `retrace` client over its default WebSocket transport.

Run as a subprocess by the tests, so the SDK's global configuration and exit hooks behave as
for a user. Commands on stdin let a test act at chosen moments of the run:

    python agent_script.py run --steps 6 [--pause-after 3 ...]
        records one run of 6 steps (an LLM call and a tool call each); after each step named by
        --pause-after it prints {"paused": step} and waits for a line on stdin. It then waits
        until the server has acknowledged every frame and prints {"answer", "acknowledged"}.
    python agent_script.py agent
        records one run of a resumable function, prints {"ready": trace_id}, then stays
        connected (so the server can send it `resume` commands) until stdin closes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import openai
import retrace
from retrace.recorder import _get_shared_transport

llm = openai.OpenAI(base_url=os.environ["FAKE_LLM_URL"] + "/v1", api_key="sk-test")
ACK_WAIT_S = 60.0


def emit(payload: dict[str, Any]) -> None:
    print(json.dumps(payload), flush=True)


def research(question: str, steps: int = 4, pause_after: tuple[int, ...] = ()) -> str:
    recorder = retrace.get_active_recorder()
    assert recorder is not None
    emit({"trace_id": recorder.trace.id})
    notes: list[str] = []
    for step in range(steps):
        reply = llm.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"{question} (step {step})"}]
        )
        tool = recorder.start_span("search_docs", span_type=retrace.SpanType.TOOL_CALL, input={"step": step})
        recorder.end_span(tool, output={"hits": step + 1, "top": reply.choices[0].message.content})
        notes.append(reply.choices[0].message.content or "")
        if step + 1 in pause_after:
            emit({"paused": step + 1})
            sys.stdin.readline()
    return " | ".join(notes)


def wait_for_acks() -> bool:
    """True once the server has acknowledged every frame sent (nothing unsent or unconfirmed)."""
    transport = _get_shared_transport()
    deadline = time.monotonic() + ACK_WAIT_S
    while transport.has_pending_data() and time.monotonic() < deadline:
        time.sleep(0.02)
    return not transport.has_pending_data()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["run", "agent"])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--pause-after", type=int, action="append", default=[])
    parser.add_argument("--question", default="How do refunds work?")
    args = parser.parse_args()

    if args.mode == "run":
        traced = retrace.record(name="docs-researcher")(research)
        answer = traced(args.question, steps=args.steps, pause_after=tuple(args.pause_after))
        emit({"answer": answer, "acknowledged": wait_for_acks()})
        return

    traced = retrace.record(name="docs-researcher", resumable=True)(research)
    traced(args.question, steps=args.steps)
    emit({"ready": True, "acknowledged": wait_for_acks()})
    sys.stdin.read()


if __name__ == "__main__":
    main()
