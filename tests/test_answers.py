"""Every answer matches the response model its route declares in the OpenAPI document.

Routes render their answers from plain data with orjson (fast); the declared models document
them. This walks the main user flows over real HTTP and checks each answer against the model
of its route and status, field for field: a field the server adds without declaring it, or a
declared one it stops sending, fails here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from pydantic import TypeAdapter
from starlette.routing import Match

from retrace_server.app import create_app
from retrace_server.config import Settings
from retrace_server.openapi import api_routes
from tests.billing.signing import new_secret, signed, subscription_event
from tests.fakes.dodo_server import FakeDodoServer
from tests.fakes.llm_server import FAIL_MARKER, FakeLLMServer
from tests.forks.agent import run_travel_agent
from tests.forks.conftest import provider_settings, wait_until_finished
from tests.otlp import bodies as otlp
from tests.support.server import ApiUser, RunningServer, create_user, running_server

DODO_KEY = "dodo_answers_key"
SECRET = new_secret()


class AnswerChecker:
    def __init__(self, routes: list[APIRoute]) -> None:
        self.routes = routes
        self.seen: set[tuple[str, str]] = set()

    def route(self, method: str, path: str) -> APIRoute:
        scope = {"type": "http", "method": method, "path": path}
        for route in self.routes:
            if route.matches(scope)[0] is Match.FULL:
                return route
        raise AssertionError(f"no route answers {method} {path}")

    def __call__(self, response: httpx.Response, status: int) -> Any:
        assert response.status_code == status, response.text
        method, path = response.request.method, response.request.url.path
        route = self.route(method, path)
        self.seen.add((method, route.path))
        if status == 204:
            assert response.content == b""
            return None
        body = response.json()
        declared = route.status_code or 200
        model = route.response_model if status == declared else route.responses[status]["model"]
        assert model is not None, f"{method} {route.path} declares no model for {status}"
        TypeAdapter(model).validate_python(body)
        return body


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as fake:
        yield fake


@pytest.fixture(scope="module")
def dodo() -> Iterator[FakeDodoServer]:
    fake = FakeDodoServer(api_key=DODO_KEY).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def everything(
    make_settings: Callable[..., Settings], llm: FakeLLMServer, dodo: FakeDodoServer
) -> Iterator[RunningServer]:
    settings = make_settings(
        **provider_settings(llm),
        dodo_api_key=DODO_KEY,
        dodo_base_url=dodo.url,
        dodo_webhook_secret=SECRET,
        dodo_pro_product_id="pdt_pro",
    )
    with running_server(settings) as server:
        yield server


@pytest.fixture(scope="module")
def check(everything: RunningServer) -> AnswerChecker:
    app = create_app(everything.settings)
    return AnswerChecker(api_routes(app))


@pytest.fixture
def user(everything: RunningServer) -> ApiUser:
    return create_user(everything)


def test_meta_and_keys(everything: RunningServer, check: AnswerChecker, user: ApiUser) -> None:
    check(httpx.get(f"{everything.url}/health"), 200)
    status = check(user.client.get("/api/v1/api-keys"), 200)
    assert status["exists"] is True
    created = check(user.client.post("/api/v1/api-keys"), 201)
    rotated = httpx.Client(base_url=everything.url, headers={"x-retrace-key": created["key"]})
    check(rotated.delete("/api/v1/api-keys"), 204)
    rotated.close()


def test_traces(check: AnswerChecker, user: ApiUser) -> None:
    trace_id = str(uuid.uuid4())
    span = {
        "id": "s1",
        "span_type": "llm_call",
        "name": "plan",
        "model": "gpt-4o-mini",
        "input": {"messages": [{"role": "user", "content": "hello"}]},
        "input_tokens": 12,
        "output_tokens": 3,
        "started_at": "2026-11-28T10:00:01Z",
    }
    check(user.client.post("/api/v1/traces", json={"id": trace_id, "name": "answers", "spans": [span]}), 201)
    check(user.client.patch(f"/api/v1/traces/{trace_id}", json={"status": "completed"}), 200)
    check(user.client.get("/api/v1/traces", params={"status": "completed"}), 200)
    stored = check(user.client.get(f"/api/v1/traces/{trace_id}"), 200)
    assert [s["id"] for s in stored["spans"]] == ["s1"]
    check(user.client.delete(f"/api/v1/traces/{trace_id}"), 204)


def test_forks_runs_and_diffs(check: AnswerChecker, user: ApiUser, llm: FakeLLMServer) -> None:
    trace = run_travel_agent(user, llm)
    fork = check(
        user.client.post(
            "/api/v1/forks",
            json={"trace_id": trace["id"], "span_id": trace["spans"][0]["id"], "parameters": {"seed": 1}},
        ),
        201,
    )
    check(user.client.get("/api/v1/forks", params={"trace_id": trace["id"]}), 200)
    replayed = user.client.post(f"/api/v1/forks/{fork['id']}/replay", json={"mode": "server"})
    finished = check(replayed, replayed.status_code)
    if finished["status"] == "running":
        finished = wait_until_finished(user, fork["id"])
    assert finished["status"] == "completed", finished
    check(user.client.get(f"/api/v1/forks/{fork['id']}"), 200)
    diff = check(user.client.get(f"/api/v1/forks/{fork['id']}/diff"), 200)
    assert diff["steps"] and diff["verdict"]
    claimed = user.client.post(
        f"/api/v1/forks/{fork['id']}/replay/claim", json={"execution_id": finished["execution_id"]}
    )
    check(claimed, 200)

    failing = check(
        user.client.post(
            "/api/v1/forks",
            json={"trace_id": trace["id"], "span_id": trace["spans"][0]["id"], "modified_input": FAIL_MARKER},
        ),
        201,
    )
    replayed = user.client.post(f"/api/v1/forks/{failing['id']}/replay", json={"mode": "server"})
    check(replayed, replayed.status_code)
    failed = wait_until_finished(user, failing["id"])
    assert failed["status"] == "failed" and failed["runs"][0]["failed_step"] is not None
    check(user.client.get(f"/api/v1/forks/{failing['id']}"), 200)


def test_memory(check: AnswerChecker, user: ApiUser) -> None:
    body = {"content": "The user prefers window seats", "key": "seat", "metadata": {"source": "chat"}}
    entry = check(user.client.post("/api/v1/memory", json=body), 201)
    check(user.client.post("/api/v1/memory", json=body), 200)
    found = check(user.client.post("/api/v1/memory/search", json={"query": "window seats"}), 200)
    assert [hit["id"] for hit in found["data"]] == [entry["id"]]
    check(user.client.get("/api/v1/memory", params={"scope": "global"}), 200)
    check(user.client.get(f"/api/v1/memory/{entry['id']}"), 200)
    check(user.client.delete(f"/api/v1/memory/{entry['id']}"), 204)


def test_skills(check: AnswerChecker, user: ApiUser) -> None:
    skill = check(
        user.client.post(
            "/api/v1/skills",
            json={
                "name": f"summarise-{uuid.uuid4().hex[:6]}",
                "prompt_template": "Summarise {text} in {words} words",
                "tools": ["search", {"name": "fetch", "parameters": {}}],
                "tags": ["writing"],
            },
        ),
        201,
    )
    check(user.client.get("/api/v1/skills", params={"tags": "writing"}), 200)
    check(user.client.get(f"/api/v1/skills/{skill['id']}"), 200)
    check(user.client.patch(f"/api/v1/skills/{skill['id']}", json={"scope": "project:x"}), 200)
    versions = check(user.client.get(f"/api/v1/skills/{skill['id']}/versions"), 200)
    assert versions["total"] == 2
    check(user.client.get(f"/api/v1/skills/{skill['id']}/versions/1"), 200)
    check(user.client.delete(f"/api/v1/skills/{skill['id']}"), 204)


def test_tapes_and_search(
    everything: RunningServer, check: AnswerChecker, user: ApiUser, llm: FakeLLMServer
) -> None:
    trace = run_travel_agent(user, llm, question="Which museums open late in Lisbon?")
    found = check(user.client.post("/api/v1/search", json={"query": "museums Lisbon"}), 200)
    assert found["data"] and found["data"][0]["trace_id"] == trace["id"]
    tape = check(user.client.post("/api/v1/tapes", json={"trace_id": trace["id"]}), 201)
    with httpx.Client(base_url=everything.url) as anonymous:
        check(anonymous.get("/api/v1/tapes"), 200)
        check(anonymous.get(f"/api/v1/tapes/{tape['slug']}"), 200)
    check(user.client.get("/api/v1/tapes", params={"mine": "true"}), 200)
    check(user.client.delete(f"/api/v1/tapes/{tape['slug']}"), 204)


def test_billing(everything: RunningServer, check: AnswerChecker, user: ApiUser) -> None:
    check(user.client.post("/api/v1/billing/checkout"), 200)
    event = subscription_event("subscription.active", user_id=user.id, at=datetime.now(UTC))
    body, headers = signed(SECRET, event)
    applied = check(
        httpx.post(f"{everything.url}/api/v1/billing/webhook", content=body, headers=headers), 200
    )
    assert applied["outcome"] == "applied"
    check(user.client.post("/api/v1/billing/portal"), 200)


def test_enforcement(check: AnswerChecker, user: ApiUser) -> None:
    policies = "/api/v1/enforcement/policies"
    approval = check(
        user.client.post(policies, json={"name": "refunds", "kind": "tool_approval", "tools": ["refund"]}),
        201,
    )
    budget = check(
        user.client.post(policies, json={"name": "budget", "kind": "run_budget", "max_tokens": 50}), 201
    )
    check(user.client.get(policies), 200)
    check(user.client.get(f"{policies}/{budget['id']}"), 200)
    check(user.client.patch(f"{policies}/{budget['id']}", json={"max_tokens": 60}), 200)
    run = str(uuid.uuid4())
    held = check(
        user.client.post(
            "/api/v1/enforcement/check", json={"run_id": run, "span_id": "r1", "tool_name": "refund"}
        ),
        200,
    )
    assert held["verdict"] == "hold"
    check(user.client.get("/api/v1/enforcement/holds", params={"status": "pending"}), 200)
    check(user.client.get(f"/api/v1/enforcement/holds/{held['hold_id']}"), 200)
    check(user.client.post(f"/api/v1/enforcement/holds/{held['hold_id']}/approve", json={"note": "ok"}), 200)
    second = check(
        user.client.post(
            "/api/v1/enforcement/check", json={"run_id": run, "span_id": "r2", "tool_name": "refund"}
        ),
        200,
    )
    check(user.client.post(f"/api/v1/enforcement/holds/{second['hold_id']}/deny"), 200)
    spans = [
        {"id": f"s{i}", "span_type": "llm_call", "name": "plan", "input_tokens": 40, "output_tokens": 5}
        for i in range(2)
    ]
    check(user.client.post("/api/v1/traces", json={"id": run, "name": "over budget", "spans": spans}), 201)
    breaches = check(user.client.get("/api/v1/enforcement/breaches", params={"trace_id": run}), 200)
    assert [b["policy_id"] for b in breaches["data"]] == [budget["id"]]
    broken = check(user.client.get(f"/api/v1/traces/{run}"), 200)["breaches"]
    assert [b["policy_id"] for b in broken] == [budget["id"]]
    check(user.client.get("/api/v1/enforcement/quota"), 200)
    check(user.client.delete(f"{policies}/{approval['id']}"), 204)


def test_golden_baselines(check: AnswerChecker, user: ApiUser) -> None:
    ids = []
    for minute in range(2):
        trace_id = str(uuid.uuid4())
        span = {"id": "s1", "span_type": "tool_call", "name": "lookup_order", "output": "found"}
        body = {
            "id": trace_id,
            "name": "support",
            "status": "completed",
            "started_at": f"2026-12-01T10:{minute:02d}:00Z",
            "ended_at": f"2026-12-01T10:{minute:02d}:30Z",
            "spans": [span],
        }
        check(user.client.post("/api/v1/traces", json=body), 201)
        ids.append(trace_id)
        if minute == 0:
            marked = check(user.client.post(f"/api/v1/traces/{trace_id}/golden", json={"golden": True}), 200)
            assert marked["golden"] is True
            check(user.client.get(f"/api/v1/traces/{trace_id}/golden"), 200)
    report = check(user.client.get(f"/api/v1/traces/{ids[1]}/regression"), 200)
    assert report["baseline_trace_id"] == ids[0]
    run = check(user.client.get(f"/api/v1/traces/{ids[1]}"), 200)
    assert run["regression"]["baseline_trace_id"] == ids[0]
    golden = check(user.client.get("/api/v1/traces", params={"golden": "true"}), 200)
    assert [t["id"] for t in golden["data"]] == [ids[0]] and golden["data"][0]["golden"] is True
    check(user.client.get("/api/v1/traces", params={"regression": report["verdict"]}), 200)


def test_redaction_preview_and_sdk_diagnostics(
    everything: RunningServer, check: AnswerChecker, user: ApiUser
) -> None:
    trace_id = str(uuid.uuid4())
    output = "connect with password=hunter2hunter2"
    span = {"id": "s1", "span_type": "llm_call", "name": "mail", "output": output}
    check(user.client.post("/api/v1/traces", json={"id": trace_id, "name": "mail", "spans": [span]}), 201)
    preview = check(user.client.post("/api/v1/tapes/preview", json={"trace_id": trace_id}), 200)
    assert preview["redacted_count"] >= 1
    logs = httpx.post(
        f"{everything.url}/api/v1/internal/logs",
        json={"service": "sdk-python", "events": [{"level": "info", "event": "sdk_init"}]},
    )
    check(logs, 204)


def test_opentelemetry(everything: RunningServer, check: AnswerChecker, user: ApiUser) -> None:
    trace, root = otlp.trace_id(), otlp.span_id()
    chat = otlp.span(trace, root, "chat gpt-4o-mini", attributes={"gen_ai.request.model": "gpt-4o-mini"})
    json_headers = {"content-type": "application/json"}
    check(user.client.post("/v1/traces", content=otlp.dumps(otlp.export([chat])), headers=json_headers), 200)
    event = otlp.log_record(trace, root, "gen_ai.user.message", body={"content": "hello"})
    check(
        user.client.post("/v1/logs", content=otlp.dumps(otlp.logs_export([event])), headers=json_headers), 200
    )
    other = otlp.span(otlp.trace_id(), otlp.span_id(), "agent run")
    langfuse = httpx.post(
        f"{everything.url}/api/public/otel/v1/traces",
        content=otlp.dumps(otlp.export([other])),
        headers=json_headers,
        auth=("pk-retrace", user.key),
    )
    check(langfuse, 200)
    check(httpx.get(f"{everything.url}/api/public/health"), 200)
    check(httpx.get(f"{everything.url}/api/public/projects", auth=("pk-retrace", user.key)), 200)


def test_every_route_was_checked(check: AnswerChecker) -> None:
    """Runs last in this module: each route answered at least once above."""
    every = {(method, r.path) for r in check.routes for method in r.methods or () if r.include_in_schema}
    assert every - check.seen == set()
