from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from retrace_server.config import Settings
from tests.support.server import ApiUser, RunningServer, create_user, start_server


@pytest.fixture(scope="session")
def semantic_server(make_settings: Callable[..., Settings]) -> Iterator[RunningServer]:
    """A server with the real model and the indexing worker (the model loads once per session)."""
    running = start_server(make_settings(embedder="local", indexer_enabled=True))
    yield running
    running.stop()


@pytest.fixture
def carol(semantic_server: RunningServer) -> ApiUser:
    return create_user(semantic_server)


@pytest.fixture
def dave(semantic_server: RunningServer) -> ApiUser:
    return create_user(semantic_server)
