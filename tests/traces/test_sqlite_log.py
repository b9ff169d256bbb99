"""SQLite's write-ahead log starts over under steady ingestion with readers about."""

from __future__ import annotations

import itertools
import struct
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from retrace_server.config import Settings
from tests.support.server import create_user, running_server

# Without restarts the log passed 150 MB long before this many traces (about 100 KB each).
MAX_TRACES = 1200
SPAN_TEXT = "The customer asks where order 4411 is; the tracking page has not changed in days. " * 6


@pytest.fixture(autouse=True)
def _sqlite_only(backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("a SQLite file's log")


def _log_generation(wal: Path) -> int | None:
    """The log header's checkpoint sequence number: SQLite adds one each time the log starts over."""
    try:
        with wal.open("rb") as log:
            header = log.read(16)
    except FileNotFoundError:
        return None
    return struct.unpack(">I", header[12:16])[0] if len(header) == 16 else None


def test_the_log_starts_over_while_traces_stream_in(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    path = tmp_path / "log.db"
    wal = path.with_name(path.name + "-wal")
    with running_server(make_settings(database_url=f"sqlite+aiosqlite:///{path}", embedder="none")) as server:
        user = create_user(server)
        sizes: list[int] = []
        generations: set[int] = set()
        started_over = threading.Event()
        budget = itertools.count()

        def post() -> None:
            while not started_over.is_set() and next(budget) < MAX_TRACES:
                trace_id = str(uuid.uuid4())
                spans = [
                    {"id": f"s{i}", "name": "chat", "input": SPAN_TEXT, "output": SPAN_TEXT}
                    for i in range(100)
                ]
                response = user.client.post("/api/v1/traces", json={"id": trace_id, "spans": spans})
                assert response.status_code == 201, response.text
                assert user.client.get(f"/api/v1/traces/{trace_id}").status_code == 200  # a reader in the log
                sizes.append(wal.stat().st_size if wal.exists() else 0)
                generation = _log_generation(wal)
                if generation is not None:
                    generations.add(generation)
                if len(generations) >= 3:
                    started_over.set()

        writers = [threading.Thread(target=post) for _ in range(4)]
        for thread in writers:
            thread.start()
        for thread in writers:
            thread.join()
    assert started_over.is_set(), f"the log never started over in {len(sizes)} traces"
    assert max(sizes) < 80 * 2**20, f"the write-ahead log reached {max(sizes) / 2**20:.0f} MB"
