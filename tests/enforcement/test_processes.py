"""Several server processes count one run together, and a fault never blocks a run."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from retrace_server.db.engine import make_engine
from tests.support.server import RunningServer, create_user, free_port, wait_for_health

CHECK = "/api/v1/enforcement/check"


@contextlib.contextmanager
def server_process(database_url: str, workdir: Path) -> Iterator[str]:
    """`retrace-server serve` in a process of its own, sharing the test's database."""
    port = free_port()
    env = {
        **os.environ,
        "RETRACE_DATABASE_URL": database_url,
        "RETRACE_RATE_LIMIT_ENABLED": "false",
        "RETRACE_EMBEDDER": "none",
        "RETRACE_INDEXER_ENABLED": "false",
        "RETRACE_LOG_LEVEL": "warning",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "retrace_server", "serve", "--port", str(port)],
        env=env,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_two_processes_count_each_step_once(server: RunningServer, tmp_path: Path) -> None:
    user = create_user(server)
    policy = user.client.post(
        "/api/v1/enforcement/policies",
        json={"name": "fifty steps", "kind": "run_budget", "max_steps": 50, "max_tokens": 10**9},
    ).json()
    run = str(uuid.uuid4())
    spans = [str(uuid.uuid4()) for _ in range(60)]
    headers = {"x-retrace-key": user.key}
    with (
        server_process(server.settings.database_url, tmp_path) as first,
        server_process(server.settings.database_url, tmp_path) as second,
        httpx.Client(headers=headers, timeout=60) as client,
    ):
        urls = (first, second)

        def check(i: int, span_id: str) -> dict[str, Any]:
            body = {"run_id": run, "span_id": span_id, "proposed_tokens": 10, "proposed_usd": 0.001}
            r = client.post(f"{urls[i % 2]}{CHECK}", json=body)
            assert r.status_code == 200, r.text
            answer: dict[str, Any] = r.json()
            return answer

        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(check, range(60), spans))
            # The same steps reported again through the other process change nothing.
            again = list(pool.map(check, range(1, 61), spans))
    verdicts = [a["verdict"] for a in answers]
    assert verdicts.count("allow") == 50 and verdicts.count("block") == 10
    assert {a["policy_id"] for a in answers if a["verdict"] == "block"} == {policy["id"]}
    assert {a["verdict"] for a in again} == {"block"}
    usage = max((a["usage"] for a in again), key=lambda u: u["steps"])
    assert (usage["steps"], usage["tokens"]) == (60, 600)
    assert abs(usage["usd"] - 0.06) < 1e-9


def test_a_fault_answers_allow(server: RunningServer) -> None:
    """With the counters unusable (their table gone), the check logs the fault and lets the run go."""
    user = create_user(server)
    user.client.post(
        "/api/v1/enforcement/policies", json={"name": "steps", "kind": "run_budget", "max_steps": 0}
    )
    run = str(uuid.uuid4())
    assert user.client.post(CHECK, json={"run_id": run}).json()["verdict"] == "block"

    async def rename(old: str, new: str) -> None:
        engine = make_engine(server.settings.database_url, pool_size=1)
        try:
            async with engine.begin() as conn:
                await conn.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))
        finally:
            await engine.dispose()

    asyncio.run(rename("enforcement_runs", "enforcement_runs_away"))
    try:
        r = user.client.post(CHECK, json={"run_id": run})
    finally:
        asyncio.run(rename("enforcement_runs_away", "enforcement_runs"))
    assert r.status_code == 200
    answer = r.json()
    assert answer["verdict"] == "allow" and answer["policy_id"] is None
    assert "Enforcement is unavailable" in answer["reason"] and "local limits still apply" in answer["reason"]
    assert user.client.post(CHECK, json={"run_id": run}).json()["verdict"] == "block"
