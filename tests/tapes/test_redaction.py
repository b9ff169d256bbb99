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
    "basic_auth": "dXNlcjpo" + "dW50ZXIy",
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
    if kind == "basic_auth":
        return f"Authorization: Basic {secret}"
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
    # The budget is shortened here; it is the same clock whatever its length.
    redactor = make_redactor([r"(a+)+$"], custom_budget_s=0.2)
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


def test_keys_issued_today_are_retrace_keys() -> None:
    redactor = make_redactor([])
    key = "rt_" + "Qz7-" * 11
    assert redactor.redact(f"export RETRACE_KEY_FILE=x; curl -H 'x-retrace-key: {key}'") == (
        "export RETRACE_KEY_FILE=x; curl -H 'x-retrace-key: [REDACTED:retrace_key]'"
    )
    assert redactor.redact("rt_short and the rt_ prefix") == "rt_short and the rt_ prefix"


def test_values_under_secret_looking_keys_whatever_their_form() -> None:
    redactor = make_redactor([])
    value = {
        "password": "hunter2",
        "passwd": 123456,
        "Secret": 3.5,
        "api_key": "not-a-known-shape",
        "apiKey": ["a1", "b2"],
        "X-Api-Key": "k",
        "authorization": "Digest username=bob",
        "aws_secret_access_key": "short",
        "client_secret": {"primary": "p1", "rotated": {"at": "2026-01-01", "value": "p0"}, "note": None},
        "GITHUB_TOKEN": "tok",
        "token": True,
        "refresh_token": "",
        "max_tokens": 256,
        "input_tokens": 12,
        "token_count": 7,
        "tokenizer": "cl100k",
        "author": "Ada",
        "keyboard": "qwerty",
    }
    redacted = redactor.redact({"request": value})["request"]
    secret = "[REDACTED:secret_field]"
    assert redacted == {
        "password": secret,
        "passwd": secret,
        "Secret": secret,
        "api_key": secret,
        "apiKey": [secret, secret],
        "X-Api-Key": secret,
        "authorization": secret,
        "aws_secret_access_key": secret,
        "client_secret": {"primary": secret, "rotated": {"at": secret, "value": secret}, "note": None},
        "GITHUB_TOKEN": secret,
        "token": True,
        "refresh_token": "",
        "max_tokens": 256,
        "input_tokens": 12,
        "token_count": 7,
        "tokenizer": "cl100k",
        "author": "Ada",
        "keyboard": "qwerty",
    }
    assert redactor.counts == {"secret_field": 13}


def test_secret_looking_names_in_text() -> None:
    redactor = make_redactor([])
    arguments = '{"user": "bob", "password": "hunter 2", "max_tokens": 5, "api_key": 42}'
    assert redactor.redact(arguments) == (
        '{"user": "bob", "password": "[REDACTED:secret_field]", "max_tokens": 5, '
        '"api_key": [REDACTED:secret_field]}'
    )
    assert (
        redactor.redact("DB_PASSWORD=hunter2\nPORT=5432") == "DB_PASSWORD=[REDACTED:secret_field]\nPORT=5432"
    )
    assert redactor.redact("host=db user=app password=s3cret dbname=prod") == (
        "host=db user=app password=[REDACTED:secret_field] dbname=prod"
    )
    assert redactor.redact("jdbc:postgresql://db/x?user=app&password=s3cret&ssl=true") == (
        "jdbc:postgresql://db/x?user=app&password=[REDACTED:secret_field]&ssl=true"
    )
    assert (
        redactor.redact("Authorization: Token 9f8e7d6c5b4a") == "Authorization: Token [REDACTED:secret_field]"
    )
    assert redactor.redact("client_secret: 'two words'") == "client_secret: '[REDACTED:secret_field]'"
    ordinary = "Use max_tokens=100, input_tokens: 5 and the secret sauce; see https://example.com:8443/x"
    assert redactor.redact(ordinary) == ordinary
    assert redactor.counts == {"secret_field": 7}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "DATABASE_URL is postgres://app:s3cr@t!@db.example.com:5432/prod today",
            "DATABASE_URL is postgres://app:[REDACTED:url_credentials]@db.example.com:5432/prod today",
        ),
        ("redis://:r3dis-pass@cache:6379/0", "redis://:[REDACTED:url_credentials]@cache:6379/0"),
        (
            "mongodb+srv://svc:M0ngo%40pw@cluster0.abcde.mongodb.net/app?retryWrites=true",
            "mongodb+srv://svc:[REDACTED:url_credentials]@cluster0.abcde.mongodb.net/app?retryWrites=true",
        ),
        (
            "git clone https://bot:gho-like-pass@git.example.com/org/repo.git",
            "git clone https://bot:[REDACTED:url_credentials]@git.example.com/org/repo.git",
        ),
    ],
)
def test_connection_strings_lose_their_password(text: str, expected: str) -> None:
    redactor = make_redactor([])
    assert redactor.redact(text) == expected
    assert redactor.counts == {"url_credentials": 1}


def test_urls_without_credentials_are_left_alone() -> None:
    redactor = make_redactor([])
    text = "see http://localhost:3001/docs, https://user@example.com/x and mailto:ann@example.com"
    assert redactor.redact(text) == text


def test_every_descriptive_field_of_trace_and_spans_is_redacted(
    alice: ApiUser, server: RunningServer
) -> None:
    key = SECRETS["openai_key"]
    trace_id = str(uuid.uuid4())
    trace: dict[str, Any] = {
        "id": trace_id,
        "name": f"agent using {key}",
        "session_id": f"session-{SECRETS['github_token']}",
        "error": "connect failed: postgres://app:pg-pass-1@db/prod",
        "status": "failed",
        "spans": [
            {
                "id": f"step-{trace_id[:8]}",
                "name": "call with password=hunter2",
                "model": f"gpt-4o {SECRETS['anthropic_key']}",
                "error": f"401 for {SECRETS['jwt']}",
                "agent_role": f"role {key}",
                "started_at": "2026-11-28T10:00:00Z",
            }
        ],
    }
    made = alice.client.post("/api/v1/traces", json=trace)
    assert made.status_code == 201, made.text
    tape = alice.client.post("/api/v1/tapes", json={"trace_id": trace_id}).json()
    assert tape["redactions"] == {
        "openai_key": 2,
        "github_token": 1,
        "url_credentials": 1,
        "secret_field": 1,
        "anthropic_key": 1,
        "jwt": 1,
    }
    assert tape["title"] == "agent using [REDACTED:openai_key]"
    with httpx.Client(base_url=server.url, timeout=60) as anonymous:
        public = anonymous.get(f"/api/v1/tapes/{tape['slug']}")
    snapshot = public.json()
    assert snapshot["trace"]["name"] == "agent using [REDACTED:openai_key]"
    assert snapshot["trace"]["session_id"] == "session-[REDACTED:github_token]"
    assert snapshot["trace"]["error"] == "connect failed: postgres://app:[REDACTED:url_credentials]@db/prod"
    assert snapshot["trace"]["id"] == trace_id and snapshot["trace"]["status"] == "failed"
    (span,) = snapshot["spans"]
    assert span["id"] == trace["spans"][0]["id"] and span["trace_id"] == trace_id
    assert span["name"] == "call with password=[REDACTED:secret_field]"
    assert span["model"] == "gpt-4o [REDACTED:anthropic_key]"
    assert span["error"] == "401 for [REDACTED:jwt]"
    assert span["agent_role"] == "role [REDACTED:openai_key]"
    for secret in (
        key,
        SECRETS["github_token"],
        "pg-pass-1",
        "hunter2",
        SECRETS["anthropic_key"],
        SECRETS["jwt"],
    ):
        assert secret not in public.text


def test_tool_arguments_and_nested_secrets_in_a_tape(alice: ApiUser) -> None:
    trace_id = str(uuid.uuid4())
    arguments = '{"host": "db", "password": "tool-pass-9"}'
    trace = {
        "id": trace_id,
        "input": {"config": {"db": {"password": 987654, "user": "app"}, "max_tokens": 64}},
        "spans": [
            {
                "id": f"llm-{trace_id[:8]}",
                "output": {"tool_calls": [{"function": {"name": "connect", "arguments": arguments}}]},
                "metadata": {"headers": {"Cookie": "sid=abc123", "Accept": "application/json"}},
            }
        ],
    }
    alice.client.post("/api/v1/traces", json=trace)
    tape = alice.client.post("/api/v1/tapes", json={"trace_id": trace_id}).json()
    assert tape["redactions"] == {"secret_field": 3}
    full = alice.client.get(f"/api/v1/tapes/{tape['slug']}").json()
    assert full["trace"]["input"] == {
        "config": {"db": {"password": "[REDACTED:secret_field]", "user": "app"}, "max_tokens": 64}
    }
    call = full["spans"][0]["output"]["tool_calls"][0]["function"]
    assert call == {"name": "connect", "arguments": '{"host": "db", "password": "[REDACTED:secret_field]"}'}
    assert full["spans"][0]["metadata"]["headers"] == {
        "Cookie": "[REDACTED:secret_field]",
        "Accept": "application/json",
    }


def test_preview_counts_what_publishing_would_redact_and_stores_nothing(alice: ApiUser, bob: ApiUser) -> None:
    trace = _trace_with_secrets()
    assert alice.client.post("/api/v1/traces", json=trace).status_code == 201
    before = alice.client.get("/api/v1/tapes", params={"mine": "true"}).json()["total"]
    preview = alice.client.post(
        "/api/v1/tapes/preview", json={"trace_id": trace["id"], "redact_patterns": ["leaky"]}
    )
    assert preview.status_code == 200, preview.text
    assert alice.client.get("/api/v1/tapes", params={"mine": "true"}).json()["total"] == before
    published = alice.client.post(
        "/api/v1/tapes", json={"trace_id": trace["id"], "redact_patterns": ["leaky"]}
    ).json()
    assert preview.json() == {
        "redacted_count": published["redacted_count"],
        "redactions": published["redactions"],
    }
    assert preview.json()["redactions"]["custom"] == 1
    others = bob.client.post("/api/v1/tapes/preview", json={"trace_id": trace["id"]})
    assert others.status_code == 404 and others.json() == {"error": "Trace not found"}
    bad = alice.client.post("/api/v1/tapes/preview", json={"trace_id": trace["id"], "redact_patterns": ["("]})
    assert bad.status_code == 400 and bad.json()["error"].startswith("redact_patterns[0]: invalid")
    unknown = alice.client.post("/api/v1/tapes/preview", json={"trace_id": trace["id"], "redact": False})
    assert unknown.status_code == 400 and "redact" in unknown.json()["error"]


def test_preview_is_documented() -> None:
    from retrace_server.app import create_app
    from retrace_server.config import Settings

    document = create_app(Settings(_env_file=None)).openapi()
    operation = document["paths"]["/api/v1/tapes/preview"]["post"]
    assert operation["summary"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/TapeRedactionPreview"}
    assert {"400", "401", "404"} <= set(operation["responses"])
