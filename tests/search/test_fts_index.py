"""SQLite full-text indexing beside the write, in a file of its own: new and changed spans are
searched directly until the indexer's next pass, which makes the index current."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from retrace_server.auth.users import ensure_user
from retrace_server.config import Settings
from retrace_server.db import migrate
from retrace_server.db.engine import Database
from retrace_server.embeddings.service import EmbeddingService
from retrace_server.ingest import Ingestor
from retrace_server.pricing import price_table
from retrace_server.search import fts_index
from retrace_server.search import service as search_service
from retrace_server.search.schemas import SearchRequest
from retrace_server.traces import service as traces
from retrace_server.traces.schemas import TraceCreate, TraceUpdate
from tests.support.semantic import wait_for
from tests.support.server import create_user, running_server

USER = "fts-user"


@pytest.fixture(autouse=True)
def _sqlite_only(backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("PostgreSQL keeps its full-text index itself, in the write")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "fts.db"
    asyncio.run(migrate.upgrade(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture
def run(db_path: Path, make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Any]]:
    """Runs a coroutine function with a Database (no serving process, so no background batches)."""
    settings = make_settings(database_url=f"sqlite+aiosqlite:///{db_path}", embedder="none")
    loop = asyncio.new_event_loop()
    db = Database(settings)
    embeddings = EmbeddingService(settings)

    async def _user() -> None:
        async with db.write() as session:
            await ensure_user(session, user_id=USER)

    loop.run_until_complete(_user())
    yield lambda fn, *args: loop.run_until_complete(fn(db, embeddings, *args))
    embeddings.close()
    loop.run_until_complete(db.dispose())
    loop.close()


def _span(text: str, span_id: str | None = None) -> dict[str, Any]:
    return {"id": span_id or uuid.uuid4().hex, "name": "chat", "input": text, "output": "ok"}


async def _post(db: Database, _: EmbeddingService, spans: list[dict[str, Any]]) -> str:
    payload = TraceCreate.model_validate({"spans": spans})
    return str((await traces.create(_ingestor(db), user_id=USER, payload=payload))["id"])


def _ingestor(db: Database) -> Ingestor:
    return Ingestor(db, prices=price_table(None))


async def _found(db: Database, embeddings: EmbeddingService, query: str) -> list[str]:
    request = SearchRequest(query=query, mode="lexical")
    result = await search_service.search(db, embeddings, user_id=USER, request=request)
    return [hit["span"]["id"] for hit in result["data"]]


def _index_all(path: Path) -> None:
    with contextlib.closing(fts_index.connect(str(path))) as connection:
        while fts_index.index_pending(connection, batch=2):
            pass


def _sql(path: Path, query: str, *params: Any) -> list[Any]:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        return connection.execute(query, params).fetchall()


def _fts_hits(path: Path, word: str) -> int:
    with contextlib.closing(fts_index.connect(str(path))) as connection:
        return int(
            connection.execute("SELECT count(*) FROM spans_fts WHERE spans_fts MATCH ?", (word,)).fetchone()[
                0
            ]
        )


def test_new_spans_are_found_before_and_after_their_batch(run: Callable[..., Any], db_path: Path) -> None:
    target = _span("the walrus invoice was declined")
    run(_post, [target, _span("an unrelated step"), _span("another walrus, no bill")])
    assert _fts_hits(db_path, "walrus") == 0
    before = run(_found, "walrus invoice")
    assert before[0] == target["id"] and len(before) == 2

    _index_all(db_path)
    assert _fts_hits(db_path, "walrus") == 2
    with contextlib.closing(fts_index.connect(str(db_path))) as connection:
        (indexed_through,) = connection.execute("SELECT indexed_through FROM spans_fts_progress").fetchone()
    assert [(indexed_through,)] == _sql(db_path, "SELECT max(pk) FROM spans")
    after = run(_found, "walrus invoice")
    assert after == before  # found once, not once from the index and once from the backlog


def test_indexed_spans_follow_updates_and_deletes(run: Callable[..., Any], db_path: Path) -> None:
    span = _span("the narwhal report")
    trace_id = run(_post, [span])
    _index_all(db_path)

    async def _rewrite(db: Database, _: EmbeddingService) -> None:
        payload = TraceUpdate.model_validate({"spans": [{**span, "input": "the platypus report"}]})
        await traces.update(_ingestor(db), user_id=USER, trace_id=trace_id, payload=payload)

    run(_rewrite)
    # Before the indexer's pass the index holds the old text; search reads the span as it is.
    assert (_fts_hits(db_path, "narwhal"), _fts_hits(db_path, "platypus")) == (1, 0)
    assert run(_found, "narwhal") == []
    assert run(_found, "platypus") == [span["id"]]
    _index_all(db_path)
    assert (_fts_hits(db_path, "narwhal"), _fts_hits(db_path, "platypus")) == (0, 1)
    assert _sql(db_path, "SELECT count(*) FROM spans_fts_changes") == [(0,)]
    assert run(_found, "narwhal") == []
    assert run(_found, "platypus") == [span["id"]]

    async def _delete(db: Database, _: EmbeddingService) -> None:
        await traces.delete(_ingestor(db), user_id=USER, trace_id=trace_id)

    run(_delete)
    assert run(_found, "platypus") == []
    _index_all(db_path)
    assert _fts_hits(db_path, "platypus") == 0
    assert run(_found, "platypus") == []


def test_a_reused_row_id_is_indexed(run: Callable[..., Any], db_path: Path) -> None:
    """SQLite gives the newest span's row id to the next span once it is deleted."""
    run(_post, [_span("kept")])
    newest = run(_post, [_span("short-lived")])
    _index_all(db_path)
    (top,) = _sql(db_path, "SELECT max(pk) FROM spans")[0]

    async def _delete(db: Database, _: EmbeddingService) -> None:
        await traces.delete(_ingestor(db), user_id=USER, trace_id=newest)

    run(_delete)
    replacement = _span("the axolotl arrived")
    run(_post, [replacement])
    assert _sql(db_path, "SELECT pk FROM spans WHERE id = ?", replacement["id"]) == [(top,)]
    assert run(_found, "short-lived") == []
    assert run(_found, "axolotl") == [replacement["id"]]
    _index_all(db_path)
    assert (_fts_hits(db_path, "axolotl"), _fts_hits(db_path, "short")) == (1, 0)
    assert run(_found, "axolotl") == [replacement["id"]]


def test_a_deleted_index_file_is_built_again(run: Callable[..., Any], db_path: Path) -> None:
    run(_post, [_span(f"the quokka number {i}") for i in range(7)])
    _index_all(db_path)
    Path(fts_index.index_path(str(db_path))).unlink()
    assert len(run(_found, "quokka")) == 7  # read directly meanwhile
    _index_all(db_path)
    assert _fts_hits(db_path, "quokka") == 7


def test_a_serving_process_indexes_the_backlog(
    run: Callable[..., Any], db_path: Path, make_settings: Callable[..., Settings]
) -> None:
    run(_post, [_span(f"backlog item {i} mentions the okapi") for i in range(50)])
    assert _fts_hits(db_path, "okapi") == 0
    settings = make_settings(database_url=f"sqlite+aiosqlite:///{db_path}", embedder="none")
    with running_server(settings) as server:
        user = create_user(server)
        wait_for(lambda: _fts_hits(db_path, "okapi") == 50, timeout=30)
        spans = [_span("the serval is fed")]
        assert user.client.post("/api/v1/traces", json={"spans": spans}).status_code == 201
        wait_for(lambda: _fts_hits(db_path, "serval") == 1, timeout=30)
