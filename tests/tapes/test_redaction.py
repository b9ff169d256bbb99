from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from retrace_server.tapes.errors import InvalidRedactionPattern
from retrace_server.tapes.redaction import make_redactor
from tests.support.server import ApiUser, RunningServer

# Built by concatenation so that secret scanners do not flag these fake values.
SECRETS: dict[str, str] = {
    "openai_key": "sk-" + "proj-" + "Zx9" * 12,
    "anthropic_key": "sk-" + "ant-api03-" + "Qw3_" * 10,
    "retrace_key": "rt_" + "live_" + "Mn8-" * 10,
    "aws_access_key": "AKIA" + "IOSFODNN7EXAMPLE",
    "github_token": "ghp" + "_" + "aB1" * 12,
    "bearer_token": "ya29." + "A0ARrdaM-x" * 4,
    "jwt": "eyJhbGciOiJSUzI1NiJ9" + ".eyJzdWIiOiJ1c2VyLTEifQ" + ".c2lnbmF0dXJlLWJ5dGVz",
    "private_key": "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\nabc+/=\n"
    + "-----END RSA PRIVATE KEY-----",
}
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def _in_context(kind: str, secret: str) -> str:
    if kind == "bearer_token":
        return f"Authorization: Bearer {secret}"
    return f"using {secret} for the call"


@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_each_builtin_kind_is_replaced(kind: str) -> None:
    redactor = make_redactor([])
    text = _in_context(kind, SECRETS[kind])
    redacted = redactor.redact({"nested": [text]})["nested"][0]
    assert SECRETS[kind] not in redacted
    assert f"[REDACTED:{kind}]" in redacted
    assert redactor.counts == {kind: 1}


def test_aws_secret_is_replaced_next_to_its_name() -> None:
    redactor = make_redactor([])
    assert redactor.redact(f"aws_secret_access_key = {AWS_SECRET}") == (
        "aws_secret_access_key = [REDACTED:aws_secret_key]"
    )


def test_ordinary_text_is_left_alone() -> None:
    redactor = make_redactor([])
    text = "Ask the task-runner to use a Bearer token; sk-short is not a key; AKIA alone neither"
    assert redactor.redact(text) == text
    assert redactor.total == 0


def test_catastrophic_custom_pattern_is_stopped() -> None:
    redactor = make_redactor([r"(a+)+$"])
    with pytest.raises(InvalidRedactionPattern) as caught:
        redactor.redact("a" * 5000 + "b")
    assert caught.value.status == 400
    assert "takes too long" in caught.value.message


def _trace_with_secrets() -> dict[str, Any]:
    trace_id = str(uuid.uuid4())
    return {
        "id": trace_id,
        "name": "leaky-agent",
        "input": {"api_key": SECRETS["openai_key"]},
        "metadata": {"deploy": f"aws_secret_access_key={AWS_SECRET}"},
        "spans": [
            {
                "id": f"{kind}-{trace_id[:6]}",
                "name": kind,
                "input": {"headers": [_in_context(kind, secret)]},
                "output": f"echo {_in_context(kind, secret)}",
                "metadata": {"note": _in_context(kind, secret)},
                "error": f"failed with {_in_context(kind, secret)}",
                "started_at": f"2026-11-28T10:00:{i:02d}Z",
            }
            for i, (kind, secret) in enumerate(sorted(SECRETS.items()))
        ],
    }


def test_published_tape_holds_no_secret(alice: ApiUser, server: RunningServer) -> None:
    trace = _trace_with_secrets()
    assert alice.client.post("/api/v1/traces", json=trace).status_code == 201
    r = alice.client.post("/api/v1/tapes", json={"trace_id": trace["id"]})
    assert r.status_code == 201, r.text
    tape = r.json()
    # Four places per span, plus the trace input and metadata.
    assert tape["redacted_count"] == 4 * len(SECRETS) + 2
    assert tape["redactions"]["openai_key"] == 5
    assert tape["redactions"]["aws_secret_key"] == 1

    with httpx.Client(base_url=server.url, timeout=60) as anonymous:
        public = anonymous.get(f"/api/v1/tapes/{tape['slug']}")
    text = public.text
    for secret in [*SECRETS.values(), AWS_SECRET]:
        assert secret.splitlines()[0] not in text
    spans = {s["name"]: s for s in public.json()["spans"]}
    assert spans["github_token"]["output"] == "echo using [REDACTED:github_token] for the call"
    assert spans["bearer_token"]["input"] == {"headers": ["Authorization: Bearer [REDACTED:bearer_token]"]}
    assert public.json()["trace"]["input"] == {"api_key": "[REDACTED:openai_key]"}
    # The live trace itself is untouched.
    assert alice.client.get(f"/api/v1/traces/{trace['id']}").json()["input"] == trace["input"]


def test_redaction_can_be_turned_off(alice: ApiUser) -> None:
    trace = _trace_with_secrets()
    alice.client.post("/api/v1/traces", json=trace)
    tape = alice.client.post("/api/v1/tapes", json={"trace_id": trace["id"], "redact": False}).json()
    assert tape["redacted_count"] == 0
    full = alice.client.get(f"/api/v1/tapes/{tape['slug']}").json()
    assert full["trace"]["input"] == {"api_key": SECRETS["openai_key"]}


def test_custom_patterns_are_redacted_too(alice: ApiUser) -> None:
    trace = {
        "id": str(uuid.uuid4()),
        "input": "customer CUST-1234 and CUST-9876, email ann@example.com",
        "spans": [{"name": "lookup", "output": {"customer": "CUST-1234"}}],
    }
    alice.client.post("/api/v1/traces", json=trace)
    body = {"trace_id": trace["id"], "redact_patterns": [r"CUST-\d{4}", r"[\w.]+@example\.com"]}
    tape = alice.client.post("/api/v1/tapes", json=body).json()
    assert tape["redactions"] == {"custom": 4}
    full = alice.client.get(f"/api/v1/tapes/{tape['slug']}").json()
    assert (
        full["trace"]["input"] == "customer [REDACTED:custom] and [REDACTED:custom], email [REDACTED:custom]"
    )
    assert full["spans"][0]["output"] == {"customer": "[REDACTED:custom]"}
