"""The linter, the formatter check and the import contracts pass on the code as committed, run
from the repository root the way a developer runs them (their configuration is pyproject.toml's).
No `backend` fixture: these run once, not per database.

mypy is not run here: without its cache it takes about a minute and a half on a 2-core machine,
which the test command cannot spare; run `mypy` before committing (see the README)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATHS = ["src", "tests", "bench"]


def run(*args: str) -> None:
    """Runs `python <args>` at the repository root and asserts it succeeded, showing its output."""
    # This checkout's code comes first, however the package is installed.
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH")])
        ),
    }
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    code = done.returncode
    assert code == 0, f"{' '.join(args)} exited with {code}:\n{done.stdout}\n{done.stderr}"


def test_ruff_check() -> None:
    run("-m", "ruff", "check", *PATHS)


def test_ruff_format() -> None:
    run("-m", "ruff", "format", "--check", *PATHS)


def test_import_contracts() -> None:
    # import-linter has no `python -m` entry point; this is what its `lint-imports` script runs.
    run("-c", "from importlinter.cli import lint_imports_command; lint_imports_command()")
