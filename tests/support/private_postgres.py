"""A PostgreSQL cluster of a test's own, in a temporary directory on a free port.

Tests that stop or restart PostgreSQL use this, never the shared server. The server refuses to
run as root, so when the tests run as root the cluster belongs to the `postgres` account.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.server import free_port

BIN_DIR = Path(os.environ.get("RETRACE_TEST_POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))


def available() -> str | None:
    """None when a private cluster can be made here, else why not."""
    if not (BIN_DIR / "initdb").exists():
        return f"no PostgreSQL server binaries in {BIN_DIR} (set RETRACE_TEST_POSTGRES_BIN)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root without a `postgres` account to own the cluster"
    return None


@dataclass
class PrivateCluster:
    data_dir: Path
    port: int
    log_file: Path
    _owner: str | None

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(BIN_DIR / args[0]), *args[1:]]
        if self._owner is not None:
            command = ["runuser", "-u", self._owner, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data_dir} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop")


@contextlib.contextmanager
def private_cluster() -> Iterator[PrivateCluster]:
    """An initialised, started cluster (trust authentication), stopped and removed afterwards."""
    reason = available()
    assert reason is None, reason
    root = Path(tempfile.mkdtemp(prefix="retrace-pg-"))
    owner = "postgres" if os.geteuid() == 0 else None
    data_dir = root / "data"
    data_dir.mkdir()
    if owner is not None:
        account = pwd.getpwnam(owner)
        for path in (root, data_dir):
            os.chown(path, account.pw_uid, account.pw_gid)
    cluster = PrivateCluster(data_dir=data_dir, port=free_port(), log_file=root / "server.log", _owner=owner)
    try:
        cluster._run("initdb", "-D", str(data_dir), "-A", "trust", "-U", "postgres", "--no-sync")
        cluster.start()
        try:
            yield cluster
        finally:
            with contextlib.suppress(subprocess.SubprocessError):
                cluster.stop("immediate")
    finally:
        shutil.rmtree(root, ignore_errors=True)
