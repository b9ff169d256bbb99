"""An agent recorded by the official `retrace` client; run as a subprocess by the tests.

Prints one JSON line: the trace id and the agent's answer.
"""

from __future__ import annotations

import json
import os
import sys

import openai
import retrace

llm = openai.OpenAI(base_url=os.environ["FAKE_LLM_URL"] + "/v1", api_key="sk-test")
recorded: dict[str, str] = {}


@retrace.record(name="order-support-agent")
def agent(question: str) -> str:
    recorder = retrace.get_active_recorder()
    assert recorder is not None
    recorded["trace_id"] = recorder.trace.id
    first = llm.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": question}])
    span = recorder.start_span("lookup_order", span_type=retrace.SpanType.TOOL_CALL, input={"order_id": 42})
    recorder.end_span(span, output={"status": "shipped", "eta_days": 2})
    second = llm.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "user", "content": question},
            {"role": "assistant", "content": first.choices[0].message.content or ""},
            {"role": "user", "content": "The order is shipped, arriving in 2 days. Answer the customer."},
        ],
    )
    return second.choices[0].message.content or ""


if __name__ == "__main__":
    answer = agent(sys.argv[1] if len(sys.argv) > 1 else "Where is my order 42?")
    retrace.shutdown()
    print(json.dumps({"trace_id": recorded["trace_id"], "answer": answer}))
