"""Text dumps of a database's schema, and the walk through the migrations whose dumps are frozen.

`migration_schemas.json` holds the dumps this walk produced when every migration's SQL was
frozen; a migration whose schema changes after it shipped fails `test_migrations`. After a
deliberate change of database version, write the file again with
`python -m tests.db.schema_dump` (RETRACE_TEST_POSTGRES_URL set) and review its diff.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Connection

from retrace_server.db import migrate
from retrace_server.db.engine import make_engine
from tests.support.server import fresh_database

FIXTURE = Path(__file__).with_name("migration_schemas.json")

# Only revisions that exist today: a later migration leaves these dumps alone.
WALK: list[tuple[str, str]] = [
    ("upgrade", "0001_foundation"),
    ("upgrade", "0005_search_memory"),
    ("upgrade", "0008_lexical_backlog"),
    ("upgrade", "0010_search_index_file"),
    ("upgrade", "0011_ids_per_user"),
    ("upgrade", "0002_accounts"),
    ("upgrade", "0003_tapes"),
    ("upgrade", "0004_skills"),
    ("upgrade", "0007_stream"),
    ("downgrade", "0010_search_index_file"),
    ("downgrade", "0008_lexical_backlog"),
    ("downgrade", "0005_search_memory"),
    ("downgrade", "base"),
]

# Each query answers (key, definition) rows; the key names one object.
_POSTGRES_QUERIES = [
    """SELECT 'column ' || c.relname || '.' || a.attname,
            '#' || a.attnum || ' ' || format_type(a.atttypid, a.atttypmod)
            || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
            || coalesce(CASE WHEN a.attgenerated = 's' THEN ' GENERATED ALWAYS AS ' ELSE ' DEFAULT ' END
                || pg_get_expr(d.adbin, d.adrelid), '')
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND a.attnum > 0
            AND NOT a.attisdropped""",
    """SELECT 'constraint ' || conrelid::regclass::text || '.' || conname, pg_get_constraintdef(oid)
        FROM pg_constraint WHERE connamespace = 'public'::regnamespace""",
    "SELECT 'index ' || indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
    "SELECT 'sequence ' || sequencename, data_type::text FROM pg_sequences WHERE schemaname = 'public'",
    """SELECT 'trigger ' || tgrelid::regclass::text || '.' || tgname, pg_get_triggerdef(oid)
        FROM pg_trigger WHERE NOT tgisinternal""",
    """SELECT 'function ' || p.oid::regprocedure::text, pg_get_functiondef(p.oid) FROM pg_proc p
        WHERE p.pronamespace = 'public'::regnamespace AND NOT EXISTS (
            SELECT 1 FROM pg_depend d
            WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')""",
]


# pgvector's columns and indexes exist only where the extension is available.
def _needs_pgvector(key: str) -> bool:
    return key.endswith(".embedding") or key.endswith("_hnsw")


def _dump(conn: Connection) -> dict[str, str]:
    if conn.dialect.name == "sqlite":
        rows = list(conn.execute(text("SELECT type || ' ' || name, coalesce(sql, '') FROM sqlite_master")))
    else:
        rows = [row for query in _POSTGRES_QUERIES for row in conn.execute(text(query))]
    schema = {key: definition for key, definition in sorted(rows) if not _needs_pgvector(key)}
    assert None not in schema.values(), schema
    return schema


async def dump_schema(url: str) -> dict[str, str]:
    """Every table, column, constraint, index, trigger and function of the database, by name."""
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_dump)
    finally:
        await engine.dispose()


async def walk(url: str) -> list[tuple[str, dict[str, str]]]:
    """Each step of `WALK` applied in order to the empty database `url`, and the schema after it."""
    schemas = []
    for action, revision in WALK:
        await getattr(migrate, action)(url, revision)
        schemas.append((f"{action} {revision}", await dump_schema(url)))
    return schemas


def changes(before: dict[str, str], after: dict[str, str]) -> dict[str, object]:
    """What one step did: objects made or redefined (`set`), and objects gone (`dropped`)."""
    return {
        "set": {key: value for key, value in after.items() if before.get(key) != value},
        "dropped": sorted(before.keys() - after.keys()),
    }


def expected_schemas(backend: str) -> list[tuple[str, dict[str, str]]]:
    """The frozen schema after each step of `WALK`, rebuilt from the fixture's changes."""
    schema: dict[str, str] = {}
    expected = []
    for step in json.loads(FIXTURE.read_text())[backend]:
        schema = {key: value for key, value in schema.items() if key not in step["dropped"]}
        schema.update(step["set"])
        expected.append((step["step"], dict(sorted(schema.items()))))
    return expected


def main() -> None:
    postgres_url = os.environ["RETRACE_TEST_POSTGRES_URL"]
    fixture: dict[str, list[dict[str, object]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for backend in ("sqlite", "postgres"):
            with fresh_database(backend, tmp, postgres_url) as url:
                before: dict[str, str] = {}
                steps = []
                for step, schema in asyncio.run(walk(url)):
                    steps.append({"step": step, **changes(before, schema)})
                    before = schema
                fixture[backend] = steps
    FIXTURE.write_text(json.dumps(fixture, indent=1) + "\n")


if __name__ == "__main__":
    main()
