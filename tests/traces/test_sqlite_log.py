"""SQLite's write-ahead log stays bounded under steady ingestion with readers about."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from retrace_server.config import Settings
from tests.support.server import create_user, running_server

TRACES = 600
SPAN_TEXT = "The customer asks where order 4411 is; the tracking page has not changed in days. " * 6


@pytest.fixture(autouse=True)
def _sqlite_only(backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("a SQLite file's log")


def test_the_log_starts_over_while_traces_stream_in(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    path = tmp_path / "log.db"
    with running_server(make_settings(database_url=f"sqlite+aiosqlite:///{path}", embedder="none")) as server:
        user = create_user(server)
        sizes: list[int] = []

        def post(count: int) -> None:
            for _ in range(count):
                trace_id = str(uuid.uuid4())
                spans = [
                    {"id": f"s{i}", "name": "chat", "input": SPAN_TEXT, "output": SPAN_TEXT}
                    for i in range(100)
                ]
                response = user.client.post("/api/v1/traces", json={"id": trace_id, "spans": spans})
                assert response.status_code == 201, response.text
                assert user.client.get(f"/api/v1/traces/{trace_id}").status_code == 200  # a reader in the log
                wal = path.with_name(path.name + "-wal")
                sizes.append(wal.stat().st_size if wal.exists() else 0)

        writers = [threading.Thread(target=post, args=(TRACES // 4,)) for _ in range(4)]
        for thread in writers:
            thread.start()
        for thread in writers:
            thread.join()
    assert len(sizes) == TRACES
    # About 100 KB of text per trace went in (60 MB): without restarts the log passed 150 MB.
    assert max(sizes) < 80 * 2**20, f"the write-ahead log reached {max(sizes) / 2**20:.0f} MB"
