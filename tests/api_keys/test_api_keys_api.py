from __future__ import annotations

import asyncio
import uuid

import httpx
from sqlalchemy import select, update

from retrace_server.auth.models import ApiKey
from retrace_server.db.engine import Database
from retrace_server.db.types import utcnow
from tests.support.jwt_keys import JwtSigner
from tests.support.server import ApiUser, RunningServer
from tests.support.wait import wait_for


def _jwt_client(server: RunningServer, signer: JwtSigner, user_id: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {signer.token(user_id)}"})


def _key_client(server: RunningServer, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"x-retrace-key": key})


def _stored_keys(server: RunningServer, user_id: str) -> list[ApiKey]:
    async def _load() -> list[ApiKey]:
        db = Database(server.settings)
        try:
            async with db.read() as session:
                return list(
                    (await session.execute(select(ApiKey).where(ApiKey.user_id == user_id))).scalars()
                )
        finally:
            await db.dispose()

    return asyncio.run(_load())


def test_generate_with_jwt_returns_the_key_once(server: RunningServer, jwt_signer: JwtSigner) -> None:
    user_id = f"web-{uuid.uuid4().hex[:8]}"
    with _jwt_client(server, jwt_signer, user_id) as web:
        assert web.get("/api/v1/api-keys").json() == {
            "exists": False,
            "prefix": None,
            "created_at": None,
            "last_used_at": None,
        }
        r = web.post("/api/v1/api-keys")
        assert r.status_code == 201, r.text
        created = r.json()
        assert created["key"].startswith("rt_") and not created["key"].startswith("rt_live_")
        assert created["prefix"] == created["key"][:12]
        assert created["created_at"].endswith("Z")

        status = web.get("/api/v1/api-keys").json()
        assert status["exists"] is True
        assert status["prefix"] == created["prefix"]
        assert status["created_at"] == created["created_at"]
        assert created["key"] not in web.get("/api/v1/api-keys").text

    with _key_client(server, created["key"]) as sdk:
        assert sdk.get("/api/v1/traces").status_code == 200


def test_key_is_stored_only_as_a_hash(server: RunningServer, jwt_signer: JwtSigner) -> None:
    user_id = f"web-{uuid.uuid4().hex[:8]}"
    with _jwt_client(server, jwt_signer, user_id) as web:
        key = web.post("/api/v1/api-keys").json()["key"]
    [row] = _stored_keys(server, user_id)
    stored = [row.id, row.key_hash, row.prefix]
    assert all(key != value for value in stored)
    assert key not in row.key_hash and len(row.key_hash) == 64


def test_generating_again_replaces_the_old_key(server: RunningServer, alice: ApiUser) -> None:
    r = alice.client.post("/api/v1/api-keys")
    assert r.status_code == 201, r.text
    new_key = r.json()["key"]
    assert new_key != alice.key

    old = alice.client.get("/api/v1/traces")
    assert old.status_code == 401
    assert old.json() == {"error": "Invalid API key"}
    with _key_client(server, new_key) as client:
        assert client.get("/api/v1/traces").status_code == 200
        assert client.get("/api/v1/api-keys").json()["prefix"] == new_key[:12]
    active = [k for k in _stored_keys(server, alice.id) if k.revoked_at is None]
    assert len(active) == 1


def test_revoke_then_key_is_refused(server: RunningServer, jwt_signer: JwtSigner, alice: ApiUser) -> None:
    assert alice.client.get("/api/v1/traces").status_code == 200
    r = alice.client.delete("/api/v1/api-keys")
    assert r.status_code == 204
    assert r.content == b""
    refused = alice.client.get("/api/v1/api-keys")
    assert refused.status_code == 401

    with _jwt_client(server, jwt_signer, alice.id) as web:
        assert web.get("/api/v1/api-keys").json()["exists"] is False
        again = web.delete("/api/v1/api-keys")
        assert again.status_code == 404
        assert again.json() == {"error": "API key not found"}


def test_revoking_with_jwt_when_none_exists_is_404(server: RunningServer, jwt_signer: JwtSigner) -> None:
    with _jwt_client(server, jwt_signer, f"web-{uuid.uuid4().hex[:8]}") as web:
        r = web.delete("/api/v1/api-keys")
    assert r.status_code == 404
    assert "API key" in r.json()["error"]


def test_last_used_at_is_recorded(server: RunningServer, alice: ApiUser) -> None:
    status = alice.client.get("/api/v1/api-keys").json()
    assert status["exists"] is True
    assert status["last_used_at"] is not None and status["last_used_at"].endswith("Z")
    assert status["last_used_at"] >= status["created_at"]


def test_endpoints_require_credentials(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url) as anonymous:
        for method in ("GET", "POST", "DELETE"):
            r = anonymous.request(method, "/api/v1/api-keys")
            assert r.status_code == 401, method
            assert "Authentication required" in r.json()["error"]
        bad = anonymous.get("/api/v1/api-keys", headers={"x-retrace-key": "rt_live_not-a-key"})
        assert bad.status_code == 401
        assert bad.json() == {"error": "Invalid API key"}


def test_users_keys_are_independent(alice: ApiUser, bob: ApiUser) -> None:
    assert alice.client.delete("/api/v1/api-keys").status_code == 204
    assert bob.client.get("/api/v1/api-keys").json()["exists"] is True
    assert bob.client.get("/api/v1/traces").status_code == 200


def test_a_key_revoked_by_another_process_stops_working(server: RunningServer, alice: ApiUser) -> None:
    """The server remembers verified keys for a second; a revocation it did not make itself
    (another server process, the CLI) shows once that second is over."""
    assert alice.client.get("/api/v1/traces").status_code == 200

    async def _revoke_elsewhere() -> None:
        db = Database(server.settings)
        try:
            async with db.write() as session:
                await session.execute(
                    update(ApiKey).where(ApiKey.user_id == alice.id).values(revoked_at=utcnow())
                )
        finally:
            await db.dispose()

    asyncio.run(_revoke_elsewhere())
    refused = wait_for(lambda: alice.client.get("/api/v1/traces").status_code == 401 or None, timeout=30.0)
    assert refused and alice.client.get("/api/v1/traces").status_code == 401
