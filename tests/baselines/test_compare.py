"""How a run compares with its baseline: each finding and the verdict it leads to."""

from __future__ import annotations

import copy
from typing import Any

from retrace_server.baselines.compare import compare


def _span(i: int, span_type: str, name: str, **over: Any) -> dict[str, Any]:
    return {
        "id": f"s{i}",
        "span_type": span_type,
        "name": name,
        "model": "gpt-4o-mini" if span_type == "llm_call" else None,
        "output": f"output {i}",
        "input_tokens": 100 if span_type == "llm_call" else None,
        "output_tokens": 20 if span_type == "llm_call" else None,
        "cost": 0.001 if span_type == "llm_call" else None,
        "duration_ms": 10,
        "error": None,
        "metadata": {"sampling": {"temperature": 0.2}} if span_type == "llm_call" else {},
        **over,
    }


def _trace(trace_id: str, spans: list[dict[str, Any]], **over: Any) -> dict[str, Any]:
    return {
        "id": trace_id,
        "status": "completed",
        "total_tokens": sum((s["input_tokens"] or 0) + (s["output_tokens"] or 0) for s in spans),
        "total_cost": sum(s["cost"] or 0 for s in spans),
        "spans": spans,
        **over,
    }


def _baseline() -> dict[str, Any]:
    return _trace(
        "base",
        [
            _span(0, "llm_call", "openai.chat"),
            _span(1, "tool_call", "lookup_order"),
            _span(2, "llm_call", "openai.chat"),
        ],
    )


def _rerun(**changes: Any) -> dict[str, Any]:
    run = copy.deepcopy(_baseline())
    run["id"] = "run"
    for span in run["spans"]:
        span["id"] = "r" + span["id"]
        span["output"] = span["output"] + " (worded differently)"
    run.update(changes)
    return run


def test_an_identical_run_passes_whatever_its_words() -> None:
    result = compare(_baseline(), _rerun(), tolerance=0.1)
    assert result["verdict"] == "pass"
    assert result["findings"] == []
    assert (result["trace_id"], result["baseline_trace_id"]) == ("run", "base")
    assert [s["status"] for s in result["steps"]] == ["changed"] * 3
    assert result["steps"][0]["output_diff"].startswith("--- baseline\n+++ run")
    assert result["steps"][0]["baseline"]["id"] == "s0" and result["steps"][0]["run"]["id"] == "rs0"


def test_a_different_tool_sequence_regresses() -> None:
    run = _rerun()
    run["spans"][1]["name"] = "refund_order"
    result = compare(_baseline(), run, tolerance=0.1)
    assert result["verdict"] == "regressed"
    kinds = {f["kind"] for f in result["findings"]}
    assert {"tool_sequence", "steps"} <= kinds
    assert "lookup_order became refund_order" in result["summary"]


def test_added_steps_regress() -> None:
    run = _rerun()
    run["spans"].insert(2, _span(9, "reasoning", "think", input_tokens=0, output_tokens=0))
    result = compare(_baseline(), run, tolerance=0.1)
    assert result["verdict"] == "regressed"
    steps = next(f for f in result["findings"] if f["kind"] == "steps")
    assert steps["detail"] == "1 step(s) added, 0 removed"
    assert [s["status"] for s in result["steps"]] == ["changed", "changed", "added", "changed"]


def test_a_new_error_regresses_and_a_fixed_one_improves() -> None:
    run = _rerun()
    run["spans"][1]["error"] = "TimeoutError: lookup took too long"
    result = compare(_baseline(), run, tolerance=0.1)
    assert result["verdict"] == "regressed"
    assert "new error: step 1 lookup_order: TimeoutError" in result["summary"]

    broken = _baseline()
    broken["spans"][1]["error"] = "boom"
    assert compare(broken, _rerun(), tolerance=0.1)["verdict"] == "improved"
    failed = _rerun(status="failed", error="agent crashed")
    assert compare(_baseline(), failed, tolerance=0.1)["verdict"] == "regressed"


def test_spend_beyond_the_tolerance() -> None:
    costly = _rerun()
    costly["total_tokens"] = int(_baseline()["total_tokens"] * 1.5)
    result = compare(_baseline(), costly, tolerance=0.1)
    assert result["verdict"] == "regressed"
    assert "tokens +50%" in result["summary"]
    within = _rerun()
    within["total_tokens"] = int(_baseline()["total_tokens"] * 1.05)
    assert compare(_baseline(), within, tolerance=0.1)["verdict"] == "pass"
    cheaper = _rerun()
    cheaper["total_cost"] = _baseline()["total_cost"] / 2
    result = compare(_baseline(), cheaper, tolerance=0.1)
    assert result["verdict"] == "improved" and "cost -50%" in result["summary"]


def test_model_or_sampling_changes_are_changed() -> None:
    run = _rerun()
    run["spans"][2]["model"] = "gpt-4o"
    result = compare(_baseline(), run, tolerance=0.1)
    assert result["verdict"] == "changed"
    assert "model changed at step 2: gpt-4o-mini → gpt-4o" in result["summary"]
    hotter = _rerun()
    hotter["spans"][0]["metadata"] = {"sampling": {"temperature": 1.0}}
    result = compare(_baseline(), hotter, tolerance=0.1)
    assert result["verdict"] == "changed" and result["findings"][0]["kind"] == "sampling"
    # A regression outweighs a mere change.
    worse = _rerun(status="failed")
    worse["spans"][2]["model"] = "gpt-4o"
    assert compare(_baseline(), worse, tolerance=0.1)["verdict"] == "regressed"
