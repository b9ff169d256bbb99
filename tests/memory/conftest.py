from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from retrace_server.config import Settings
from tests.support.server import ApiUser, RunningServer, create_user, start_server


@pytest.fixture(scope="session")
def memory_server(make_settings: Callable[..., Settings]) -> Iterator[RunningServer]:
    """A server with the real model (loaded once per test process)."""
    running = start_server(make_settings(embedder="local"))
    yield running
    running.stop()


@pytest.fixture
def erin(memory_server: RunningServer) -> ApiUser:
    return create_user(memory_server)


@pytest.fixture
def frank(memory_server: RunningServer) -> ApiUser:
    return create_user(memory_server)
