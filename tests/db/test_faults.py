"""Database faults answer what a client can act on: 503 with Retry-After while PostgreSQL restarts
or is out of reach, 507 when the disk is full; each outage is logged in one line, and nothing that
was acknowledged is lost.

PostgreSQL is restarted in a private cluster (never the shared server); the full disk is a small
tmpfs mounted for the test.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from retrace_server.config import Settings
from retrace_server.db import faults
from retrace_server.stream.frames import fault_error_frame
from tests.support import private_postgres
from tests.support.server import RunningServer, create_user, running_server

POSTGRES_URL = os.environ.get("RETRACE_TEST_POSTGRES_URL")
WAIT_S = 120.0


def _settings(database_url: str) -> Settings:
    return Settings(
        _env_file=None,
        database_url=database_url,
        rate_limit_enabled=False,
        embedder="none",
        indexer_enabled=False,
    )


def wait_until(condition: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class Answer:
    trace_id: str
    status: int
    body: str
    retry_after: str | None


@dataclass
class WriteLoad:
    """Threads that create traces without pause and keep every answer."""

    url: str
    key: str
    threads: int = 4
    payload: str = "step"
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> WriteLoad:
        for _ in range(self.threads):
            worker = threading.Thread(target=self._run, daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=60)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, headers={"x-retrace-key": self.key}, timeout=60) as client:
            while not self._stop.is_set():
                trace_id = f"load-{uuid.uuid4().hex}"
                body = {
                    "id": trace_id,
                    "input": self.payload,
                    "spans": [{"id": "s1", "output": self.payload}],
                }
                try:
                    r = client.post("/api/v1/traces", json=body)
                except httpx.HTTPError as exc:
                    self.answers.append(Answer(trace_id, 0, repr(exc), None))
                    continue
                self.answers.append(Answer(trace_id, r.status_code, r.text, r.headers.get("retry-after")))

    def count(self, status: int, since: int = 0) -> int:
        return sum(1 for answer in self.answers[since:] if answer.status == status)


def _fault_log(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "retrace_server.db.faults"]


def _tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.exc_info and r.name.startswith("retrace_server")]


def _assert_acknowledged_are_stored(server: RunningServer, key: str, answers: list[Answer]) -> None:
    with httpx.Client(base_url=server.url, headers={"x-retrace-key": key}, timeout=60) as client:
        for answer in answers:
            if answer.status == 201:
                assert client.get(f"/api/v1/traces/{answer.trace_id}").status_code == 200, answer.trace_id


# --- PostgreSQL restarting -------------------------------------------------------------------


needs_private_postgres = pytest.mark.skipif(
    private_postgres.available() is not None, reason=str(private_postgres.available())
)


@needs_private_postgres
def test_postgres_restart_under_load_answers_503_with_retry_after(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    faults.outages.forget()
    with private_postgres.private_cluster() as cluster, running_server(_settings(cluster.url)) as server:
        user = create_user(server)
        with WriteLoad(server.url, user.key) as load:
            wait_until(lambda: load.count(201) >= 20, "writes before the restart")
            cluster.stop("fast")
            wait_until(lambda: load.count(503) >= 10, "503 answers while PostgreSQL is down")
            cluster.start()
            back = len(load.answers)
            wait_until(lambda: load.count(201, since=back) >= 20, "writes after the restart")
        answers = list(load.answers)
        _assert_acknowledged_are_stored(server, user.key, answers)

    assert {a.status for a in answers} == {201, 503}, {a.status for a in answers} - {201, 503}
    for answer in answers:
        if answer.status == 503:
            assert answer.retry_after == "1"
            assert "The database is unavailable for a moment" in answer.body
    outage_lines = [r for r in _fault_log(caplog) if r.levelno >= logging.WARNING]
    assert len(outage_lines) == 1, [r.getMessage() for r in outage_lines]
    assert "Database unavailable" in outage_lines[0].getMessage()
    assert _tracebacks(caplog) == []


class RefusingProxy:
    """A TCP proxy to PostgreSQL that can reset the next connections as soon as they open."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.refuse = 0
        self.refused = 0
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        """Closes every open connection: the server's pooled connections are dead."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._listener.close()
        self.cut()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                refuse = self.refuse > 0
                if refuse:
                    self.refuse -= 1
                    self.refused += 1
            if refuse:
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self._port))
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


@pytest.mark.skipif(not POSTGRES_URL, reason="RETRACE_TEST_POSTGRES_URL is not set")
def test_a_refused_connection_is_tried_once_more(tmp_path: Path) -> None:
    from tests.support.server import fresh_database

    assert POSTGRES_URL is not None
    with fresh_database("postgres", str(tmp_path), POSTGRES_URL) as url:
        host_port = url.split("@", 1)[1].split("/", 1)[0]
        proxy = RefusingProxy(int(host_port.rsplit(":", 1)[1]))
        try:
            proxied = url.replace(host_port, f"127.0.0.1:{proxy.port}")
            with running_server(_settings(proxied)) as server:
                user = create_user(server)
                assert user.client.get("/api/v1/traces").status_code == 200
                proxy.refuse = 1
                proxy.cut()
                created = user.client.post("/api/v1/traces", json={"id": "after-a-refusal"})
                assert created.status_code == 201, created.text
                assert proxy.refused == 1
                proxy.refuse = 2
                proxy.cut()
                refused = user.client.post("/api/v1/traces", json={"id": "after-two-refusals"})
                assert refused.status_code == 503, refused.text
                assert refused.headers["retry-after"] == "1"
                assert user.client.get("/api/v1/traces/after-two-refusals").status_code == 404
        finally:
            proxy.close()


# --- SQLite on a full disk -------------------------------------------------------------------


@contextlib.contextmanager
def small_tmpfs(size: str) -> Iterator[Path]:
    mount_point = Path(tempfile.mkdtemp(prefix="retrace-full-disk-"))
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        mount_point.rmdir()
        pytest.skip(f"cannot mount a tmpfs to fill (needs root or CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)
        mount_point.rmdir()


def _fill(directory: Path) -> Path:
    """A file taking every free byte of the file system: freed later to end the outage."""
    filler = directory / "filler"
    with filler.open("wb") as out:
        with contextlib.suppress(OSError):
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        with contextlib.suppress(OSError):
            os.fsync(out.fileno())
    return filler


def _until_refused(write: Callable[[int], httpx.Response], attempts: int = 200) -> httpx.Response:
    for attempt in range(attempts):
        response = write(attempt)
        if response.status_code != 201:
            return response
    raise AssertionError(f"{attempts} writes stored on a full disk")


def test_sqlite_full_disk_answers_507(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    faults.outages.forget()
    with small_tmpfs("24m") as disk, running_server(_settings(f"sqlite:///{disk}/retrace.db")) as server:
        user = create_user(server)
        # Room for some writes, then nothing: the next pages have nowhere to go.
        headroom = disk / "headroom"
        headroom.write_bytes(b"\0" * 4 * 1024 * 1024)
        filler = _fill(disk)
        headroom.unlink()
        with WriteLoad(server.url, user.key, threads=3, payload="x" * 20_000) as load:
            wait_until(lambda: load.count(507) >= 5, "507 answers on the full disk")
        # Other write paths (sessions, not the writer thread): a small write may still fit in the
        # pages the log already holds, so write until refused.
        memory = _until_refused(
            lambda i: user.client.post("/api/v1/memory", json={"content": f"memory {i} " + "y" * 19_000})
        )
        tape_trace = next(a.trace_id for a in load.answers if a.status == 201)
        tape = _until_refused(lambda _i: user.client.post("/api/v1/tapes", json={"trace_id": tape_trace}))
        assert user.client.get("/api/v1/traces").status_code == 200  # reads still work
        filler.unlink()
        after = user.client.post("/api/v1/traces", json={"id": "after-space-was-freed"})
        answers = list(load.answers)
        _assert_acknowledged_are_stored(server, user.key, answers)

    assert load.count(201) > 0
    assert {a.status for a in answers} <= {201, 507}, {a.status for a in answers}
    for answer in [a for a in answers if a.status == 507]:
        assert "disk is full" in answer.body and answer.retry_after == "30"
    for refused in (memory, tape):
        assert refused.status_code == 507, refused.text
        assert refused.json()["error"].startswith("The server's disk is full")
    assert after.status_code == 201, after.text
    outage_lines = [r for r in _fault_log(caplog) if r.levelno >= logging.WARNING]
    assert len(outage_lines) == 1, [r.getMessage() for r in outage_lines]
    assert "Disk full" in outage_lines[0].getMessage()
    assert _tracebacks(caplog) == []


# --- Classification and the stream's frame ----------------------------------------------------


def _sqlite_error(code: int, message: str) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code
    return error


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (OperationalError("COMMIT", {}, _sqlite_error(13, "database or disk is full")), faults.DiskFull),
        (_sqlite_error(13, "database or disk is full"), faults.DiskFull),
        (OSError(errno.ENOSPC, "No space left on device"), faults.DiskFull),
        (_sqlite_error(5, "database is locked"), faults.DatabaseUnavailable),
        (IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed")), None),
        (ValueError("a bug"), None),
        (ConnectionRefusedError(111, "refused, but not by a database"), None),
    ],
)
def test_classification(exc: Exception, expected: type[Any] | None) -> None:
    fault = faults.classify(exc)
    assert (type(fault) if fault is not None else None) is expected


@pytest.mark.parametrize("fault", [faults.DatabaseUnavailable("connection refused"), faults.DiskFull()])
def test_stream_fault_frames_are_retryable_for_the_official_sdk(fault: Exception) -> None:
    from retrace.errors import classify_server_signal

    frame = fault_error_frame(fault, seq=7)
    assert frame is not None
    assert frame["type"] == "error" and frame["seq"] == 7 and frame["retry_after"] >= 1
    signal = classify_server_signal("error", frame["error"])
    assert signal.retryable and not signal.fatal and signal.code == "rate_limited"
    assert fault_error_frame(ValueError("a bug"), seq=7) is None
