"""Every failure answers the `{"error": ...}` envelope and carries a request id."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from retrace_server.config import Settings
from retrace_server.db.engine import make_engine
from tests.support.server import ApiUser, RunningServer, create_user, running_server


def _assert_envelope(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    assert response.headers["x-request-id"]


def test_error_envelope_on_every_status(server: RunningServer, alice: ApiUser) -> None:
    anonymous = httpx.Client(base_url=server.url)
    _assert_envelope(anonymous.get("/api/v1/traces"), 401)
    _assert_envelope(anonymous.get("/api/v1/traces", headers={"x-retrace-key": "rt_live_wrong"}), 401)
    _assert_envelope(anonymous.get("/api/v1/traces", headers={"authorization": "Basic abc"}), 401)
    _assert_envelope(alice.client.get("/no/such/route"), 404)
    _assert_envelope(alice.client.get("/api/v1/traces/does-not-exist"), 404)
    _assert_envelope(alice.client.put("/api/v1/traces"), 405)
    _assert_envelope(
        alice.client.post("/api/v1/traces", content=b"{", headers={"content-type": "application/json"}), 400
    )
    _assert_envelope(
        alice.client.post("/api/v1/traces", content=b"[1]", headers={"content-type": "application/json"}), 400
    )
    _assert_envelope(
        alice.client.post("/api/v1/traces", content=b'{"id": 5}', headers={"content-type": "text/plain"}), 415
    )
    trace = {"id": "dup-" + alice.id}
    alice.client.post("/api/v1/traces", json=trace)
    _assert_envelope(alice.client.post("/api/v1/traces", json=trace), 409)
    anonymous.close()


def test_body_over_limit_is_413(make_settings: object) -> None:
    settings: Settings = make_settings(max_body_bytes=2048)  # type: ignore[operator]
    with running_server(settings) as small:
        user = create_user(small)
        big = {"id": "big", "input": "x" * 5000}
        _assert_envelope(user.client.post("/api/v1/traces", json=big), 413)
        assert "2048" in user.client.post("/api/v1/traces", json=big).json()["error"]

        def chunks() -> Iterator[bytes]:
            for _ in range(10):
                yield b" " * 1000

        # Without Content-Length (chunked upload) the limit holds too.
        streamed = user.client.post(
            "/api/v1/traces",
            content=chunks(),
            headers={"content-type": "application/json"},
        )
        _assert_envelope(streamed, 413)
        assert user.client.get("/api/v1/traces/big").status_code == 404


def test_request_id_is_echoed_or_made(alice: ApiUser) -> None:
    mine = alice.client.get("/api/v1/traces", headers={"x-request-id": "client-req.42:a_b-c"})
    assert mine.headers["x-request-id"] == "client-req.42:a_b-c"
    for bad in ("has space", "x" * 129, "semi;colon"):
        made = alice.client.get("/api/v1/traces", headers={"x-request-id": bad})
        assert made.headers["x-request-id"] != bad and len(made.headers["x-request-id"]) == 32
    ids = {alice.client.get("/api/v1/traces").headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3


def test_internal_error_hides_internals_and_logs_request_id(
    make_settings: object, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    # A private SQLite database whose schema is broken after start-up.
    settings: Settings = make_settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/broken.db")  # type: ignore[operator]
    with running_server(settings) as broken:
        user = create_user(broken)

        async def _drop_spans() -> None:
            engine = make_engine(settings.database_url)
            async with engine.begin() as conn:
                await conn.execute(text("DROP TABLE spans"))
            await engine.dispose()

        asyncio.run(_drop_spans())
        with caplog.at_level(logging.ERROR, logger="retrace_server.errors"):
            r = user.client.post("/api/v1/traces", json={"id": "t", "spans": [{"id": "s"}]})
        _assert_envelope(r, 500)
        assert "spans" not in r.json()["error"] and "Traceback" not in r.text
        request_id = r.headers["x-request-id"]
        assert request_id in r.json()["error"]
        assert any(request_id in rec.getMessage() for rec in caplog.records)


def test_nested_type_errors_name_the_field(alice: ApiUser) -> None:
    r = alice.client.post("/api/v1/traces", json={"metadata": "not an object"})
    _assert_envelope(r, 400)
    assert r.json()["error"].startswith("metadata:")
    r = alice.client.post("/api/v1/traces", json={"spans": [{}, {"metadata": [1]}]})
    assert r.json()["error"].startswith("spans[1].metadata:")


def test_trace_writes_fail_cleanly_when_the_database_file_is_gone(
    make_settings: object, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    settings: Settings = make_settings(database_url=f"sqlite+aiosqlite:///{data_dir}/vanishing.db")  # type: ignore[operator]
    with running_server(settings) as server:
        user = create_user(server)
        assert user.client.get("/api/v1/traces").status_code == 200  # the reading pool is open
        for leftover in data_dir.iterdir():
            leftover.unlink()
        data_dir.rmdir()
        # The writer cannot open the database: each request answers at once instead of hanging.
        for attempt in range(2):
            r = user.client.post("/api/v1/traces", json={"id": f"t{attempt}"}, timeout=30)
            _assert_envelope(r, 500)
