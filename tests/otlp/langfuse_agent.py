"""The weather agent as a Langfuse user writes it, run in its own process (the Langfuse SDK patches
the `openai` module for the whole process). Prints what the test checks as one JSON line.

LANGFUSE_HOST, LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY and LLM_URL come from the environment.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

from langfuse import get_client, observe
from langfuse.openai import openai

from tests.otlp.agent import Run, run_weather_agent


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.name}: {record.getMessage()}")


def main() -> None:
    problems = Collect()
    logging.getLogger().addHandler(problems)
    langfuse = get_client()
    authenticated = langfuse.auth_check()
    client = openai.OpenAI(base_url=f"{os.environ['LLM_URL']}/v1", api_key="sk-test", max_retries=0)

    @contextlib.contextmanager
    def tool_span(name: str, arguments: dict[str, Any], call_id: str) -> Iterator[Callable[[Any], None]]:
        results: list[Any] = []

        @observe(name=name, as_type="tool")
        def get_weather(city: str) -> Any:
            return results[0]

        yield results.append
        get_weather(**arguments)

    trace_ids: list[str] = []

    @observe(name="weather-agent")
    def agent() -> Run:
        trace_ids.append(langfuse.get_current_trace_id() or "")
        return run_weather_agent(client, tool_span=tool_span)

    run = agent()
    langfuse.shutdown()
    print(
        json.dumps(
            {
                "trace_id": trace_ids[0],
                "answer": run.answer,
                "tool_call_id": run.tool_call_id,
                "authenticated": authenticated,
                "problems": problems.messages,
            }
        )
    )


if __name__ == "__main__":
    main()
