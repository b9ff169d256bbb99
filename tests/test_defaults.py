"""The main user flows on the shipped defaults.

Most tests share a server with rate limiting, the embedder and the indexer off, for speed. This
one runs `serve` as it comes out of the box: only the database, and the replay provider's URL
(a local fake OpenAI), are set; rate limiting, the local embedding model and the in-process
indexer are on. A user records a run with the official SDK, finds it by words and by meaning,
shares it, forks and replays it, and gives an agent a memory.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from retrace_server.config import Settings
from tests.conftest import POSTGRES_URL
from tests.fakes.llm_server import FakeLLMServer
from tests.sdk.test_sdk_http import run_agent
from tests.support.semantic import wait_for
from tests.support.server import ApiUser, RunningServer, create_user, fresh_database, running_server


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as fake:
        yield fake


@pytest.fixture(scope="module")
def shipped(
    backend: str, tmp_path_factory: pytest.TempPathFactory, llm: FakeLLMServer
) -> Iterator[RunningServer]:
    """A database of its own: the indexer embeds everything it holds."""
    with fresh_database(backend, str(tmp_path_factory.mktemp("defaults")), POSTGRES_URL) as database_url:
        settings = Settings(
            _env_file=None,
            database_url=database_url,
            openai_base_url=f"{llm.url}/v1",
            openai_api_key="sk-test",
        )
        assert settings.rate_limit_enabled and settings.indexer_enabled and settings.embedder == "auto"
        with running_server(settings) as server:
            yield server


@pytest.fixture(scope="module")
def user(shipped: RunningServer) -> ApiUser:
    return create_user(shipped)


def _search(user: ApiUser, query: str, mode: str) -> list[dict[str, Any]]:
    # The first search by meaning waits for the model to load.
    answer = user.client.post("/api/v1/search", json={"query": query, "mode": mode}, timeout=300)
    assert answer.status_code == 200, answer.text
    hits: list[dict[str, Any]] = answer.json()["data"]
    return hits


def test_record_find_share_fork_and_remember(
    shipped: RunningServer, user: ApiUser, llm: FakeLLMServer
) -> None:
    # Record: the official SDK, over HTTP, against the limited server.
    recorded = run_agent(shipped, user, llm.url, transport="http")
    listed = user.client.get("/api/v1/traces")
    assert listed.status_code == 200 and "x-ratelimit-limit" in listed.headers
    assert recorded["trace_id"] in [t["id"] for t in listed.json()["data"]]
    trace = user.client.get(f"/api/v1/traces/{recorded['trace_id']}").json()
    llm_spans = [s for s in trace["spans"] if s["span_type"] == "llm_call"]
    assert len(llm_spans) == 2 and all(s["cost"] > 0 for s in llm_spans)
    assert trace["total_cost"] == pytest.approx(sum(s["cost"] for s in llm_spans))

    # Find: by a word at once, and by meaning once the indexer has embedded the run.
    assert any(h["trace_id"] == trace["id"] for h in _search(user, "lookup_order", "lexical"))
    found = wait_for(
        lambda: [
            h
            for h in _search(user, "when will my parcel be delivered", "semantic")
            if h["trace_id"] == trace["id"]
        ],
        timeout=180,
    )
    assert found[0]["span"]["trace_id"] == trace["id"]

    # Share: a public tape anyone can read.
    tape = user.client.post("/api/v1/tapes", json={"trace_id": trace["id"], "title": "Order 42"})
    assert tape.status_code == 201, tape.text
    public = httpx.get(f"{shipped.url}/api/v1/tapes/{tape.json()['slug']}", timeout=30)
    assert public.status_code == 200 and public.json()["trace"]["id"] == trace["id"]

    # Fork at the first LLM call with another question, and replay it on the server.
    fork = user.client.post(
        "/api/v1/forks",
        json={
            "trace_id": trace["id"],
            "fork_point_span_id": llm_spans[0]["id"],
            "modified_input": "Cancel order 42",
        },
    )
    assert fork.status_code == 201, fork.text
    replayed = user.client.post(f"/api/v1/forks/{fork.json()['id']}/replay")
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["status"] == "completed"
    diff = user.client.get(f"/api/v1/forks/{fork.json()['id']}/diff").json()
    assert diff["verdict"] != "unchanged"

    # Remember: a memory found again by meaning.
    memory_key = f"pref-{uuid.uuid4().hex[:6]}"
    stored = user.client.post(
        "/api/v1/memory",
        json={"content": "The customer prefers deliveries on Saturday mornings", "key": memory_key},
    )
    assert stored.status_code == 201, stored.text
    hits = user.client.post(
        "/api/v1/memory/search", json={"query": "which day should parcels arrive"}, timeout=300
    ).json()
    assert hits["data"] and hits["data"][0]["key"] == memory_key


def test_the_write_limit_holds_on_the_defaults(shipped: RunningServer) -> None:
    limited = create_user(shipped)
    limit = shipped.settings.rate_limit_free_write
    answers = [limited.client.post("/api/v1/traces", json={}).status_code for _ in range(limit + 1)]
    assert answers[:limit] == [201] * limit
    assert answers[-1] == 429
