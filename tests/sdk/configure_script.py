"""An agent that hands its key to the official client in code, not through RETRACE_API_KEY.

`python configure_script.py configure|init KEY BASE_URL LLM_URL` prints one JSON line with the
trace id. `configure` decorates the run with `@retrace.record`; `init` relies on the ambient trace
that `retrace.init()` starts and ends at exit.
"""

from __future__ import annotations

import json
import sys

import openai
import retrace


def main(how: str, key: str, base_url: str, llm_url: str) -> None:
    llm = openai.OpenAI(base_url=llm_url + "/v1", api_key="sk-test")
    if how == "configure":
        retrace.configure(api_key=key, base_url=base_url, transport="http")

        @retrace.record(name="configured-agent")
        def agent() -> str:
            recorder = retrace.get_active_recorder()
            assert recorder is not None
            print(json.dumps({"trace_id": recorder.trace.id}), flush=True)
            reply = llm.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello from configure"}]
            )
            return reply.choices[0].message.content or ""

        agent()
        return
    recorder = retrace.init(name="initialised-agent", api_key=key, base_url=base_url, transport="http")
    assert recorder is not None
    print(json.dumps({"trace_id": recorder.trace.id}), flush=True)
    llm.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello from init"}]
    )
    retrace.shutdown(output="done")


if __name__ == "__main__":
    main(*sys.argv[1:5])
