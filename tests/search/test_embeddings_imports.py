"""Imports flow one way: memory and search use the embeddings domain, never the reverse."""

from __future__ import annotations

import ast
from pathlib import Path

import retrace_server

PACKAGE = Path(retrace_server.__file__).parent
# What the embeddings domain may build on: settings, the database layer, and the span table.
ALLOWED = (
    "retrace_server.config",
    "retrace_server.db",
    "retrace_server.embeddings",
    "retrace_server.traces.models",
)


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name.startswith("retrace_server")}


def test_the_embeddings_domain_imports_no_higher_domain() -> None:
    offending = {
        f"{path.relative_to(PACKAGE)}: {module}"
        for path in (PACKAGE / "embeddings").glob("*.py")
        for module in imported_modules(path)
        if not module.startswith(ALLOWED)
    }
    assert offending == set()
