"""Trace answers show the golden mark and the regression verdict, and trace lists filter on them."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.baselines.test_baselines_api import _golden, _record
from tests.support.server import ApiUser


def _trace(user: ApiUser, trace_id: str) -> dict[str, Any]:
    r = user.client.get(f"/api/v1/traces/{trace_id}")
    assert r.status_code == 200, r.text
    trace: dict[str, Any] = r.json()
    return trace


def _compared(user: ApiUser, trace_id: str) -> dict[str, Any]:
    """The trace once the completion hook, which runs after the write answers, has compared it."""
    deadline = time.monotonic() + 30
    while True:
        trace = _trace(user, trace_id)
        if trace["regression"] is not None or time.monotonic() > deadline:
            return trace
        time.sleep(0.05)


def _ids(user: ApiUser, **params: Any) -> list[str]:
    r = user.client.get("/api/v1/traces", params=params)
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["total"] == len(page["data"])
    return [item["id"] for item in page["data"]]


def test_answers_carry_the_golden_mark_and_the_verdict(alice: ApiUser, bob: ApiUser) -> None:
    baseline = _record(alice, minute=0, tools=["lookup_order"])
    fresh = _trace(alice, baseline)
    assert (fresh["golden"], fresh["regression"], fresh["breaches"]) == (False, None, [])
    _golden(alice, baseline)
    assert _trace(alice, baseline)["golden"] is True

    passing = _record(alice, minute=1, tools=["lookup_order"])
    regressed = _record(alice, minute=2, tools=["lookup_order", "refund_order"])
    passed = _compared(alice, passing)
    assert passed["golden"] is False
    assert passed["regression"] == {
        "verdict": "pass",
        "baseline_trace_id": baseline,
        "summary": passed["regression"]["summary"],
    }
    worse = _compared(alice, regressed)["regression"]
    assert (worse["verdict"], worse["baseline_trace_id"]) == ("regressed", baseline)
    assert "lookup_order became lookup_order → refund_order" in worse["summary"]
    # The stored verdict is what the full report found.
    report = alice.client.get(f"/api/v1/traces/{regressed}/regression").json()
    assert (report["verdict"], report["summary"]) == (worse["verdict"], worse["summary"])

    items = {item["id"]: item for item in alice.client.get("/api/v1/traces").json()["data"]}
    assert items[baseline]["golden"] is True and items[baseline]["regression"] is None
    assert items[passing]["regression"]["verdict"] == "pass"
    assert items[regressed]["regression"]["verdict"] == "regressed"
    # Lists stay lean: broken policies are in the answer of one trace.
    assert "breaches" not in items[baseline]

    # Unmarking shows at once; the verdicts found against the baseline stay.
    _golden(alice, baseline, golden=False)
    assert _trace(alice, baseline)["golden"] is False
    assert _trace(alice, regressed)["regression"]["verdict"] == "regressed"
    # Another user's marks never show.
    own = _record(bob, minute=0, tools=["lookup_order"])
    assert _trace(bob, own)["golden"] is False


def test_lists_filter_on_golden_marks_and_verdicts(alice: ApiUser, bob: ApiUser) -> None:
    baseline = _record(alice, minute=0, tools=["lookup_order"], project_id="shop")
    _golden(alice, baseline)
    passing = _record(alice, minute=1, tools=["lookup_order"], project_id="shop")
    regressed = _record(alice, minute=2, tools=[], project_id="shop")
    other_project = _record(alice, minute=3, tools=["a"], project_id="blog")
    _golden(alice, other_project)
    for trace_id in (passing, regressed):
        assert _compared(alice, trace_id)["regression"] is not None
    bob_baseline = _record(bob, minute=0, tools=["lookup_order"])
    _golden(bob, bob_baseline)

    assert _ids(alice, golden="true") == [other_project, baseline]
    assert _ids(alice, golden="true", project_id="shop") == [baseline]
    assert _ids(alice, golden="false") == [regressed, passing]
    assert _ids(alice, regression="regressed") == [regressed]
    assert _ids(alice, regression="pass") == [passing]
    assert _ids(alice, regression="improved") == []
    assert _ids(alice, regression="pass", project_id="blog") == []
    assert _ids(alice, project_id="blog") == [other_project]
    assert _ids(bob, golden="true") == [bob_baseline]
    assert _ids(bob, regression="regressed") == []
    page = alice.client.get("/api/v1/traces", params={"golden": "true", "limit": 1, "offset": 1}).json()
    assert ([t["id"] for t in page["data"]], page["total"]) == ([baseline], 2)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"golden": "maybe"}, "golden"),
        ({"regression": "worse"}, "regression"),
        ({"regression": ""}, "regression"),
    ],
)
def test_bad_filter_values_answer_400(alice: ApiUser, params: dict[str, str], field: str) -> None:
    r = alice.client.get("/api/v1/traces", params=params)
    assert r.status_code == 400, r.text
    assert set(r.json()) == {"error"} and field in r.json()["error"]
