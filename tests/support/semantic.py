"""Helpers for tests that need the real embedding model and the indexing worker."""

from __future__ import annotations

import uuid
from typing import Any

from tests.support.server import ApiUser
from tests.support.wait import wait_for


def span(text_in: str, text_out: str, **over: Any) -> dict[str, Any]:
    return {
        "id": f"span-{uuid.uuid4().hex[:10]}",
        "span_type": "llm_call",
        "name": "chat",
        "model": "gpt-4o-mini",
        "input": {"messages": [{"role": "user", "content": text_in}]},
        "output": text_out,
        "started_at": "2026-11-28T10:00:00Z",
        **over,
    }


def post_trace(user: ApiUser, spans: list[dict[str, Any]], **over: Any) -> str:
    trace_id = str(uuid.uuid4())
    body = {"id": trace_id, "name": "agent-run", "started_at": "2026-11-28T10:00:00Z", "spans": spans, **over}
    response = user.client.post("/api/v1/traces", json=body)
    assert response.status_code == 201, response.text
    return trace_id


def search(user: ApiUser, query: str, **body: Any) -> dict[str, Any]:
    response = user.client.post("/api/v1/search", json={"query": query, **body})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def found_ids(result: dict[str, Any]) -> list[str]:
    return [hit["span"]["id"] for hit in result["data"]]


def wait_semantic(
    user: ApiUser, query: str, span_id: str, *, timeout: float = 120.0, **body: Any
) -> dict[str, Any]:
    """The semantic search result once the indexer has embedded `span_id`."""

    def attempt() -> dict[str, Any] | None:
        result = search(user, query, mode="semantic", **body)
        return result if span_id in found_ids(result) else None

    return wait_for(attempt, timeout=timeout)
