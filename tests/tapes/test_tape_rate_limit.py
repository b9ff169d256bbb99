from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx

from retrace_server.config import Settings
from tests.support.server import create_user, running_server


def test_anonymous_tape_reads_are_limited_per_address(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(rate_limit_enabled=True, rate_limit_ip=3, rate_limit_free_read=50)
    with running_server(settings) as server:
        owner = create_user(server)
        trace_id = str(uuid.uuid4())
        assert (
            owner.client.post("/api/v1/traces", json={"id": trace_id, "name": "limited"}).status_code == 201
        )
        slug = owner.client.post("/api/v1/tapes", json={"trace_id": trace_id}).json()["slug"]

        with httpx.Client(base_url=server.url, timeout=60) as anonymous:
            allowed = [anonymous.get(f"/api/v1/tapes/{slug}") for _ in range(3)]
            refused = anonymous.get(f"/api/v1/tapes/{slug}")
            listing = anonymous.get("/api/v1/tapes")

        assert [r.status_code for r in allowed] == [200, 200, 200]
        assert [r.headers["x-ratelimit-remaining"] for r in allowed] == ["2", "1", "0"]
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert "unauthenticated requests per minute" in refused.json()["error"]
        assert listing.status_code == 429
        # A caller with credentials is counted against their own plan instead.
        r = owner.client.get(f"/api/v1/tapes/{slug}")
        assert r.status_code == 200
        assert r.headers["x-ratelimit-limit"] == "50"
        assert r.json()["view_count"] == 4
