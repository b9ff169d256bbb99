"""The migrations make exactly the schema the models describe, keep it frozen, and undo it."""

from __future__ import annotations

import ast
import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from retrace_server.db import migrate
from retrace_server.db.engine import make_engine
from retrace_server.tables import metadata
from tests.conftest import POSTGRES_URL
from tests.db import schema_dump
from tests.support.server import fresh_database

VERSIONS = migrate.MIGRATIONS_DIR / "versions"


def _schema_drift(url: str) -> list[object]:
    async def _compare() -> list[object]:
        engine = make_engine(url)
        try:
            async with engine.connect() as conn:

                def _diff(sync_conn: Connection) -> list[object]:
                    context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
                    return [d for d in compare_metadata(context, metadata) if not _is_dialect_only_object(d)]

                return await conn.run_sync(_diff)
        finally:
            await engine.dispose()

    return asyncio.run(_compare())


# Full-text and vector structures made with raw DDL in the migrations, which the models do not
# describe: FTS5 tables (and their shadow tables), tsvector and pgvector columns and indexes.
RAW_DDL_NAMES = ("spans_fts", "search_document", "embedding", "_hnsw")


def _is_dialect_only_object(diff: object) -> bool:
    text = repr(diff)
    return text.startswith(("('remove_table'", "('remove_index'", "('remove_column'")) and any(
        name in text for name in RAW_DDL_NAMES
    )


def _tables(url: str) -> set[str]:
    async def _names() -> set[str]:
        engine = make_engine(url)
        try:
            async with engine.connect() as conn:
                return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        finally:
            await engine.dispose()

    return asyncio.run(_names())


def test_migrations_match_models_and_downgrade(backend: str, tmp_path: Path) -> None:
    with fresh_database(backend, str(tmp_path), POSTGRES_URL) as url:
        asyncio.run(migrate.upgrade(url))
        assert {"users", "api_keys", "traces", "spans"} <= _tables(url)
        assert _schema_drift(url) == []
        # Running again is a no-op, as on every `serve` start.
        asyncio.run(migrate.upgrade(url))
        asyncio.run(migrate.downgrade(url))
        assert _tables(url) <= {"alembic_version"}


# What would let a migration's SQL follow later code: importing the application, or loading
# another file (a sibling migration) at run time.
_FORBIDDEN_MODULES = ("retrace_server", "importlib", "runpy")
_FORBIDDEN_CALLS = ("__import__", "exec", "eval")


def _imported_modules(tree: ast.Module) -> list[str]:
    modules = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules.append("." * node.level + (node.module or ""))
    return modules


def _called_names(tree: ast.Module) -> list[str]:
    return [
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    ]


@pytest.mark.parametrize("path", sorted(VERSIONS.glob("*.py")), ids=lambda path: path.stem)
def test_migration_is_self_contained(path: Path) -> None:
    """A migration's SQL is frozen inside it: editing live code never rewrites history."""
    tree = ast.parse(path.read_text(), filename=str(path))
    modules = _imported_modules(tree)
    assert not [m for m in modules if m.startswith(".") or m.split(".")[0] in _FORBIDDEN_MODULES], modules
    assert not set(_called_names(tree)) & set(_FORBIDDEN_CALLS)
    assert "importlib" not in path.read_text()


def test_migrations_make_the_frozen_schemas(backend: str, tmp_path: Path) -> None:
    """Every step up and down the migrations makes the schema it made when it shipped."""
    with fresh_database(backend, str(tmp_path), POSTGRES_URL) as url:
        walked = asyncio.run(schema_dump.walk(url))
    expected = schema_dump.expected_schemas(backend)
    assert [step for step, _ in walked] == [step for step, _ in expected]
    for (step, schema), (_, frozen) in zip(walked, expected, strict=True):
        assert schema == frozen, step


BEFORE_IDS_PER_USER = [
    "0002_accounts",
    "0003_tapes",
    "0004_skills",
    "0006_forks",
    "0007_stream",
    "0009_spans_by_trace",
    "0010_search_index_file",
]
_T0 = "'2026-11-30T10:00:00.000000Z'"
_TRACE_COLUMNS = (
    "id, user_id, name, status, input, output, metadata, lossy, started_at, total_tokens, total_cost, "
    "total_duration_ms, span_count, created_at, updated_at"
)
_SPAN_COLUMNS = (
    "pk, id, trace_id, user_id, span_type, name, model, input, output, metadata, started_at, error"
)


def _trace(trace_id: str, user_id: str) -> str:
    return (
        f"INSERT INTO traces ({_TRACE_COLUMNS}) VALUES ('{trace_id}', '{user_id}', 'agent run', 'ok', "
        f"""'{{"q": "hi"}}', NULL, '{{}}', false, {_T0}, 30, 0.5, 1200, 2, {_T0}, {_T0})"""
    )


def _span(span_id: str, trace_id: str, name: str, *, user_id: str = "u1") -> str:
    return (
        "INSERT INTO spans (id, trace_id, user_id, span_type, name, model, input, output, metadata, "
        f"started_at) VALUES ('{span_id}', '{trace_id}', '{user_id}', 'llm', '{name}', 'gpt-test', "
        f"""'{{"prompt": "{name}"}}', '"answer"', '{{}}', {_T0})"""
    )


async def _run(url: str, statements: Sequence[str]) -> list[list[tuple[Any, ...]]]:
    """Runs raw SQL in one transaction; answers the rows of each statement that returns rows."""
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            answers = []
            for statement in statements:
                result = await conn.exec_driver_sql(statement)
                answers.append([tuple(row) for row in result] if result.returns_rows else [])
            return answers
    finally:
        await engine.dispose()


def _query(url: str, *statements: str) -> list[list[tuple[Any, ...]]]:
    return asyncio.run(_run(url, statements))


def test_upgrade_from_search_index_file_keeps_data_and_triggers(backend: str, tmp_path: Path) -> None:
    """Rows written at 0010 survive the per-user ids migration with their span keys and triggers."""
    spans_query = f"SELECT {_SPAN_COLUMNS} FROM spans ORDER BY pk"
    traces_query = f"SELECT {_TRACE_COLUMNS} FROM traces ORDER BY id"
    queue_query = "SELECT span_pk, seq FROM span_index_queue ORDER BY span_pk"
    with fresh_database(backend, str(tmp_path), POSTGRES_URL) as url:
        for revision in BEFORE_IDS_PER_USER:
            asyncio.run(migrate.upgrade(url, revision))
        _query(
            url,
            f"INSERT INTO users (id, tier, created_at) VALUES ('u1', 'free', {_T0}), ('u2', 'free', {_T0})",
            _trace("t1", "u1"),
            _span("s1", "t1", "plan"),
            _span("s2", "t1", "answer"),
            "UPDATE spans SET name = 'plan again' WHERE id = 's1'",
        )
        spans, traces, queue = _query(url, spans_query, traces_query, queue_query)
        pks = [row[0] for row in spans]
        assert queue == [(pks[0], 2), (pks[1], 1)]

        asyncio.run(migrate.upgrade(url))

        assert _query(url, spans_query, traces_query, queue_query) == [spans, traces, queue]
        assert _query(url, "SELECT user_id, status, count FROM trace_counts") == [[("u1", "ok", 1)]]
        # Ids are now per user: another user may reuse t1 and s1.
        _query(
            url,
            _trace("t1", "u2"),
            _span("s1", "t1", "other user", user_id="u2"),
            _span("s3", "t1", "late"),
            "UPDATE spans SET output = '\"changed\"' WHERE id = 's2'",
            "DELETE FROM spans WHERE id = 's1' AND user_id = 'u1'",
        )
        (new_pks,) = _query(url, "SELECT pk FROM spans WHERE id IN ('s1', 's3') ORDER BY pk")
        assert _query(url, queue_query) == [[(pks[1], 2), (new_pks[0][0], 1), (new_pks[1][0], 1)]]
        assert sorted(_query(url, "SELECT user_id, count FROM trace_counts")[0]) == [("u1", 1), ("u2", 1)]
        if backend == "sqlite":
            # The index file learns which indexed text changed or went.
            (changes,) = _query(url, "SELECT span_pk, name FROM spans_fts_changes ORDER BY seq")
            assert changes == [(pks[0], "plan"), (pks[1], "answer"), (pks[0], "plan again")]

        _query(url, "DELETE FROM traces WHERE user_id = 'u2'")
        asyncio.run(migrate.downgrade(url))
        assert _tables(url) <= {"alembic_version"}
