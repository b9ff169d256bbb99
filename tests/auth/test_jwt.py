"""Bearer JWTs signed by the test's own RSA key, with Clerk-style claims."""

from __future__ import annotations

import httpx

from retrace_server.config import Settings
from tests.support.jwt_keys import JwtSigner
from tests.support.server import RunningServer, running_server


def _bearer(server_url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=server_url, headers={"authorization": f"Bearer {token}"})


def test_valid_jwt_creates_user_on_first_sight_and_isolates(
    server: RunningServer, jwt_signer: JwtSigner
) -> None:
    carol = _bearer(server.url, jwt_signer.token("user_carol_jwt"))
    dave = _bearer(server.url, jwt_signer.token("user_dave_jwt"))
    r = carol.post("/api/v1/traces", json={"id": "jwt-trace-carol", "name": "from the web app"})
    assert r.status_code == 201, r.text
    assert carol.get("/api/v1/traces/jwt-trace-carol").json()["name"] == "from the web app"
    assert dave.get("/api/v1/traces/jwt-trace-carol").status_code == 404
    assert "jwt-trace-carol" not in [t["id"] for t in dave.get("/api/v1/traces").json()["data"]]


def test_bad_tokens_are_401(server: RunningServer, jwt_signer: JwtSigner) -> None:
    other_key = JwtSigner()
    cases = {
        "expired": jwt_signer.token("u1", ttl_s=-60),
        "wrong signer": other_key.token("u1"),
        "not yet valid": jwt_signer.token("u1", nbf=9_999_999_999),
        "garbage": "not.a.jwt",
    }
    for label, token in cases.items():
        r = _bearer(server.url, token).get("/api/v1/traces")
        assert r.status_code == 401, label
        assert r.json()["error"], label
    assert "expired" in _bearer(server.url, cases["expired"]).get("/api/v1/traces").json()["error"]


def test_issuer_and_authorized_parties(make_settings: object, jwt_signer: JwtSigner) -> None:
    settings: Settings = make_settings(  # type: ignore[operator]
        jwt_issuer="https://clerk.example.test", jwt_authorized_parties="https://app.example.test"
    )
    with running_server(settings) as strict:
        good = jwt_signer.token("u-azp", iss="https://clerk.example.test", azp="https://app.example.test")
        assert _bearer(strict.url, good).get("/api/v1/traces").status_code == 200
        no_azp = jwt_signer.token("u-azp", iss="https://clerk.example.test")
        assert _bearer(strict.url, no_azp).get("/api/v1/traces").status_code == 200
        wrong_azp = jwt_signer.token(
            "u-azp", iss="https://clerk.example.test", azp="https://evil.example.test"
        )
        assert "azp" in _bearer(strict.url, wrong_azp).get("/api/v1/traces").json()["error"]
        wrong_iss = jwt_signer.token(
            "u-azp", iss="https://other.example.test", azp="https://app.example.test"
        )
        assert _bearer(strict.url, wrong_iss).get("/api/v1/traces").status_code == 401


def test_jwt_rejected_when_server_has_no_key(make_settings: object, jwt_signer: JwtSigner) -> None:
    settings: Settings = make_settings(jwt_public_key=None)  # type: ignore[operator]
    with running_server(settings) as keyless:
        r = _bearer(keyless.url, jwt_signer.token("u1")).get("/api/v1/traces")
        assert r.status_code == 401 and "no JWT key" in r.json()["error"]
