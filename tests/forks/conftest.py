from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from retrace_server.config import Settings
from tests.fakes.llm_server import FakeLLMServer
from tests.support.server import ApiUser, RunningServer, create_user, running_server


def provider_settings(llm: FakeLLMServer) -> dict[str, Any]:
    return {
        "openai_base_url": f"{llm.url}/v1",
        "openai_api_key": "sk-test",
        "anthropic_base_url": llm.url,
        "anthropic_api_key": "sk-ant-test",
    }


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as fake:
        yield fake


@pytest.fixture(scope="module")
def fork_server(make_settings: Callable[..., Settings], llm: FakeLLMServer) -> Iterator[RunningServer]:
    """A server whose replay providers are the fake LLM server."""
    with running_server(make_settings(**provider_settings(llm))) as server:
        yield server


@pytest.fixture
def carol(fork_server: RunningServer) -> ApiUser:
    return create_user(fork_server)


@pytest.fixture
def dave(fork_server: RunningServer) -> ApiUser:
    return create_user(fork_server)


def wait_until_finished(user: ApiUser | httpx.Client, fork_id: str) -> dict[str, Any]:
    client = user.client if isinstance(user, ApiUser) else user
    deadline = time.monotonic() + 60
    while True:
        fork: dict[str, Any] = client.get(f"/api/v1/forks/{fork_id}").json()
        if fork["status"] not in ("created", "running") or time.monotonic() > deadline:
            return fork
        time.sleep(0.05)
