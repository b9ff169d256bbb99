"""A run against its golden baseline: what changed, and whether that is a regression.

Steps are aligned by the fork diff (`forks.diff.diff_traces`: a longest common subsequence over
span type and name), so an inserted step does not make every later one look different. Then:

- regressed: steps added or removed, a different sequence of tool calls, an error where the
  baseline had none, or tokens or cost up by more than the tolerance;
- improved: none of those, and fewer errors or tokens or cost down by more than the tolerance;
- changed: none of those, but a different model or sampling settings (`metadata.sampling`);
- pass: the same steps, tools, models and sampling, with spend within the tolerance.

Output text is shown (`output_diff`) but not judged: models phrase the same answer differently
from run to run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from retrace_server.forks.diff import diff_traces

RegressionVerdict = Literal["pass", "regressed", "improved", "changed"]
Effect = Literal["regressed", "improved", "changed"]


def _finding(kind: str, effect: Effect, detail: str, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "effect": effect, "detail": detail, **extra}


def _has_error(span: Mapping[str, Any] | None) -> bool:
    return span is not None and (bool(span.get("error")) or span.get("span_type") == "error")


def _tools(trace: Mapping[str, Any]) -> list[str]:
    return [s["name"] for s in trace["spans"] if s["span_type"] == "tool_call"]


def _sampling(span: Mapping[str, Any]) -> Any:
    return (span.get("metadata") or {}).get("sampling")


def _spend(
    findings: list[dict[str, Any]], what: str, before: float, after: float, tolerance: float, unit: str
) -> None:
    if before <= 0:
        return
    change = (after - before) / before
    if abs(change) <= tolerance:
        return
    shown = f"{before:.6f} → {after:.6f}" if unit == "$" else f"{int(before)} → {int(after)}"
    findings.append(
        _finding(
            what,
            "regressed" if change > 0 else "improved",
            f"{what} {change:+.0%} ({shown}{' tokens' if unit != '$' else ' USD'})",
            change=round(change, 4),
        )
    )


def _totals(trace: Mapping[str, Any]) -> dict[str, Any]:
    spans = trace["spans"]
    return {
        "tokens": int(trace.get("total_tokens") or 0),
        "cost": float(trace.get("total_cost") or 0.0),
        "steps": len(spans),
        "tool_calls": _tools(trace),
        "errors": sum(1 for s in spans if _has_error(s)) + (1 if trace.get("status") == "failed" else 0),
        "status": trace.get("status"),
    }


def compare(baseline: Mapping[str, Any], run: Mapping[str, Any], *, tolerance: float) -> dict[str, Any]:
    """The full comparison of `run` with `baseline` (traces with their spans in start order)."""
    diff = diff_traces(dict(baseline), dict(run))
    base_spans = {s["id"]: s for s in baseline["spans"]}
    run_spans = {s["id"]: s for s in run["spans"]}
    findings: list[dict[str, Any]] = []

    added = [s for s in diff["steps"] if s["status"] == "added"]
    removed = [s for s in diff["steps"] if s["status"] == "removed"]
    if added or removed:
        findings.append(
            _finding(
                "steps",
                "regressed",
                f"{len(added)} step(s) added, {len(removed)} removed",
                added=[f"{s['fork']['span_type']} {s['fork']['name']}" for s in added],
                removed=[f"{s['original']['span_type']} {s['original']['name']}" for s in removed],
            )
        )
    base_tools, run_tools = _tools(baseline), _tools(run)
    if base_tools != run_tools:
        findings.append(
            _finding(
                "tool_sequence",
                "regressed",
                f"tool calls {' → '.join(base_tools) or '(none)'} became {' → '.join(run_tools) or '(none)'}",
                baseline=base_tools,
                run=run_tools,
            )
        )

    new_errors, fixed_errors = [], []
    model_changes, sampling_changes = [], []
    for step in diff["steps"]:
        old = base_spans.get(step["original"]["id"]) if step["original"] else None
        new = run_spans.get(step["fork"]["id"]) if step["fork"] else None
        if _has_error(new) and not _has_error(old):
            assert new is not None
            new_errors.append(f"step {step['index']} {new['name']}: {new.get('error') or new['span_type']}")
        if _has_error(old) and not _has_error(new):
            fixed_errors.append(step["index"])
        if old is None or new is None or old["span_type"] != "llm_call":
            continue
        if (old.get("model") or None) != (new.get("model") or None):
            model_changes.append(f"step {step['index']}: {old.get('model')} → {new.get('model')}")
        if _sampling(old) != _sampling(new):
            sampling_changes.append(f"step {step['index']}: {_sampling(old)} → {_sampling(new)}")
    base_totals, run_totals = _totals(baseline), _totals(run)
    if run.get("status") == "failed" and baseline.get("status") != "failed":
        new_errors.append(f"the run failed: {run.get('error') or 'no error message'}")
    if new_errors:
        findings.append(_finding("new_error", "regressed", f"new error: {new_errors[0]}", errors=new_errors))
    elif fixed_errors or run_totals["errors"] < base_totals["errors"]:
        findings.append(
            _finding(
                "fewer_errors",
                "improved",
                f"errors {base_totals['errors']} → {run_totals['errors']}",
            )
        )
    if model_changes:
        findings.append(
            _finding("model", "changed", f"model changed at {model_changes[0]}", changes=model_changes)
        )
    if sampling_changes:
        findings.append(
            _finding(
                "sampling", "changed", f"sampling changed at {sampling_changes[0]}", changes=sampling_changes
            )
        )
    _spend(findings, "tokens", base_totals["tokens"], run_totals["tokens"], tolerance, "tokens")
    _spend(findings, "cost", base_totals["cost"], run_totals["cost"], tolerance, "$")

    effects = {f["effect"] for f in findings}
    verdict: RegressionVerdict
    if "regressed" in effects:
        verdict = "regressed"
    elif "improved" in effects:
        verdict = "improved"
    elif "changed" in effects:
        verdict = "changed"
    else:
        verdict = "pass"
    summary = "; ".join(f["detail"] for f in findings) or (
        f"same steps, tool calls, models and sampling as the baseline; tokens and cost within {tolerance:.0%}"
    )
    return {
        "trace_id": run["id"],
        "baseline_trace_id": baseline["id"],
        "verdict": verdict,
        "summary": summary,
        "tolerance": tolerance,
        "findings": findings,
        "totals": {"baseline": base_totals, "run": run_totals},
        "first_divergence": _renamed_divergence(diff["first_divergence"]),
        "steps": [_renamed_step(step) for step in diff["steps"]],
    }


def _renamed_divergence(divergence: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if divergence is None:
        return None
    return {
        "index": divergence["index"],
        "baseline_span_id": divergence["original_span_id"],
        "run_span_id": divergence["fork_span_id"],
    }


def _renamed_step(step: Mapping[str, Any]) -> dict[str, Any]:
    """The fork diff's step, in a baseline's words."""
    output_diff = step["output_diff"]
    if output_diff is not None and output_diff.startswith("--- original\n+++ fork"):
        output_diff = "--- baseline\n+++ run" + output_diff[len("--- original\n+++ fork") :]
    return {
        "index": step["index"],
        "status": step["status"],
        "baseline": step["original"],
        "run": step["fork"],
        "output_diff": output_diff,
    }
