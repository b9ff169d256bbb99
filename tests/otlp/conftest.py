from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from retrace_server.config import Settings
from tests.otlp.agent import ToolCallingLLM
from tests.support.server import ApiUser, RunningServer, create_user, running_server


@pytest.fixture(scope="module")
def llm() -> Iterator[ToolCallingLLM]:
    with ToolCallingLLM() as fake:
        yield fake


@pytest.fixture(scope="module")
def otlp_server(make_settings: Callable[..., Settings], llm: ToolCallingLLM) -> Iterator[RunningServer]:
    """A server whose replay provider is the fake LLM server."""
    settings = make_settings(openai_base_url=f"{llm.url}/v1", openai_api_key="sk-test")
    with running_server(settings) as server:
        yield server


@pytest.fixture
def erin(otlp_server: RunningServer) -> ApiUser:
    return create_user(otlp_server)


def stored_trace(user: ApiUser, trace_id: str) -> dict[str, Any]:
    r = user.client.get(f"/api/v1/traces/{trace_id}")
    assert r.status_code == 200, r.text
    trace: dict[str, Any] = r.json()
    return trace
