"""Keys this server issues work when handed to the official client in code.

`retrace.configure(api_key=...)` and `retrace.init(api_key=...)` refuse keys starting `rt_live_`
or `rt_test_`; keys issued before the change (`rt_live_...`) must keep authenticating.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from retrace_server.auth.keys import DISPLAY_PREFIX_LENGTH, hash_key
from retrace_server.auth.models import ApiKey
from retrace_server.auth.users import ensure_user
from retrace_server.db.engine import Database
from retrace_server.db.types import utcnow
from tests.fakes.llm_server import FakeLLMServer
from tests.support.server import ApiUser, RunningServer

SCRIPT = Path(__file__).with_name("configure_script.py")


def _run(how: str, key: str, server: RunningServer, llm_url: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETRACE_")}
    env["RETRACE_TELEMETRY"] = "0"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), how, key, server.url, llm_url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "rejected" not in done.stderr and "failed" not in done.stderr, done.stderr
    trace_id: str = json.loads(done.stdout.strip().splitlines()[-1])["trace_id"]
    return trace_id


def test_new_keys_have_the_form_the_sdk_accepts(alice: ApiUser) -> None:
    from retrace.config import RetraceConfig, configure

    created = alice.client.post("/api/v1/api-keys").json()
    key = created["key"]
    assert key.startswith("rt_") and not key.startswith(("rt_live_", "rt_test_"))
    assert created["prefix"] == key[:DISPLAY_PREFIX_LENGTH]
    # The SDK's own check, in this process (configure keeps module state: restore it).
    import retrace.config as sdk_config

    saved = sdk_config._config
    try:
        sdk_config._config = RetraceConfig(api_key="", base_url="http://127.0.0.1:1")
        configure(api_key=key)
    finally:
        sdk_config._config = saved


@pytest.mark.parametrize("how", ["configure", "init"])
def test_sdk_records_with_a_key_given_in_code(how: str, server: RunningServer, alice: ApiUser) -> None:
    with FakeLLMServer() as llm:
        trace_id = _run(how, alice.key, server, llm.url)
        assert len(llm.requests) == 1
    trace = alice.client.get(f"/api/v1/traces/{trace_id}")
    assert trace.status_code == 200, trace.text
    body = trace.json()
    assert body["name"] == ("configured-agent" if how == "configure" else "initialised-agent")
    assert [s["span_type"] for s in body["spans"]] == ["llm_call"]
    assert body["spans"][0]["model"] == "gpt-4o-mini"


def test_keys_issued_as_rt_live_keep_working(server: RunningServer) -> None:
    user_id = f"legacy-{uuid.uuid4().hex[:8]}"
    legacy_key = "rt_live_" + secrets.token_urlsafe(32)

    async def _store_legacy_key() -> None:
        db = Database(server.settings)
        try:
            async with db.write() as session:
                await ensure_user(session, user_id=user_id)
                session.add(
                    ApiKey(
                        id=str(uuid.uuid4()),
                        user_id=user_id,
                        key_hash=hash_key(legacy_key),
                        prefix=legacy_key[:DISPLAY_PREFIX_LENGTH],
                        created_at=utcnow(),
                    )
                )
        finally:
            await db.dispose()

    asyncio.run(_store_legacy_key())
    with httpx.Client(base_url=server.url, headers={"x-retrace-key": legacy_key}) as client:
        created = client.post("/api/v1/traces", json={"id": f"legacy-{uuid.uuid4().hex}", "name": "old key"})
        assert created.status_code == 201, created.text
        assert client.get("/api/v1/api-keys").json()["prefix"] == "rt_live_" + legacy_key[8:12]
        rotated = client.post("/api/v1/api-keys").json()["key"]
    assert not rotated.startswith("rt_live_")
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/api/v1/traces", headers={"x-retrace-key": legacy_key}).status_code == 401
        assert client.get("/api/v1/traces", headers={"x-retrace-key": rotated}).status_code == 200
