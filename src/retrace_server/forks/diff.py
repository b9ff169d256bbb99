"""Step-by-step diff of an original trace and its replay, with a verdict.

Steps are aligned by a longest common subsequence over (span type, name), so inserted and
removed steps do not shift everything after them; among equally long alignments the earliest
match wins. Myers' O((N+M)·D) algorithm computes it, after trimming the common head and tail,
so near-identical traces of thousands of spans align in linear time.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

from retrace_server.forks.inputs import to_text
from retrace_server.forks.schemas import Verdict

# Cost or token changes below this share of the original are noise, not a difference.
COST_TOLERANCE = 0.01


def align(a: Sequence[Any], b: Sequence[Any]) -> list[tuple[int | None, int | None]]:
    """Pairs (i, j) of matched items, (i, None) for removed and (None, j) for added, in order."""
    head = 0
    while head < len(a) and head < len(b) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < len(a) - head and tail < len(b) - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    middle = _myers(a[head : len(a) - tail], b[head : len(b) - tail])
    pairs: list[tuple[int | None, int | None]] = [(i, i) for i in range(head)]
    pairs.extend((None if i is None else i + head, None if j is None else j + head) for i, j in middle)
    pairs.extend((len(a) - tail + t, len(b) - tail + t) for t in range(tail))
    return pairs


def _myers(a: Sequence[Any], b: Sequence[Any]) -> list[tuple[int | None, int | None]]:
    n, m = len(a), len(b)
    if n == 0 or m == 0:
        return [(i, None) for i in range(n)] + [(None, j) for j in range(m)]
    frontier: dict[int, int] = {1: 0}
    history: list[dict[int, int]] = []
    for d in range(n + m + 1):
        history.append(dict(frontier))
        for k in range(-d, d + 1, 2):
            if k == -d or (k != d and frontier[k - 1] < frontier[k + 1]):
                x = frontier[k + 1]
            else:
                x = frontier[k - 1] + 1
            y = x - k
            while x < n and y < m and a[x] == b[y]:
                x += 1
                y += 1
            frontier[k] = x
            if x >= n and y >= m:
                return _backtrack(history, n, m)
    raise AssertionError("unreachable: an edit script always exists")


def _backtrack(history: list[dict[int, int]], n: int, m: int) -> list[tuple[int | None, int | None]]:
    x, y = n, m
    out: list[tuple[int | None, int | None]] = []
    for d in range(len(history) - 1, -1, -1):
        frontier = history[d]
        k = x - y
        went_down = k == -d or (k != d and frontier.get(k - 1, -1) < frontier.get(k + 1, -1))
        prev_k = k + 1 if went_down else k - 1
        prev_x = frontier.get(prev_k, 0)
        prev_y = prev_x - prev_k
        while x > prev_x and y > prev_y and x > 0 and y > 0:
            out.append((x - 1, y - 1))
            x, y = x - 1, y - 1
        if d > 0:
            if x == prev_x:
                out.append((None, y - 1))
            else:
                out.append((x - 1, None))
            x, y = prev_x, prev_y
    out.reverse()
    return out


def _summary(span: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": span["id"],
        "span_type": span["span_type"],
        "name": span["name"],
        "model": span.get("model"),
        "output": span.get("output"),
        "input_tokens": span.get("input_tokens"),
        "output_tokens": span.get("output_tokens"),
        "cost": span.get("cost"),
        "duration_ms": span.get("duration_ms"),
        "error": span.get("error"),
        "replay": (span.get("metadata") or {}).get("replay"),
    }


def output_diff(old: str, new: str) -> str:
    if old and new and "\n" not in old and "\n" not in new and old != new:
        # The common case of one-line outputs, without difflib's matcher (same text as it makes).
        return f"--- original\n+++ fork\n@@ -1 +1 @@\n-{old}\n+{new}"
    lines = difflib.unified_diff(
        old.splitlines(), new.splitlines(), fromfile="original", tofile="fork", lineterm="", n=2
    )
    return "\n".join(lines)


def _errors(trace: dict[str, Any]) -> int:
    failed_spans = sum(1 for s in trace["spans"] if s.get("error") or s["span_type"] == "error")
    return failed_spans + (1 if trace.get("status") == "failed" else 0)


def _has_cost(trace: dict[str, Any]) -> bool:
    return any(s.get("cost") is not None for s in trace["spans"]) or bool(trace.get("total_cost"))


def _tokens(trace: dict[str, Any]) -> int:
    return int(trace.get("total_tokens") or 0)


def _compare(delta: float, base: float) -> int:
    """-1 lower (better), 0 within tolerance, 1 higher (worse)."""
    if abs(delta) <= COST_TOLERANCE * abs(base) or delta == 0:
        return 0
    return 1 if delta > 0 else -1


def verdict(*, error_delta: int, spend: int, any_step_differs: bool) -> Verdict:
    """Fewer errors is better; at equal errors, lower cost (or tokens) is better.

    Both better: improved; both worse: regressed; one each way: mixed. With neither signal
    moving, an identical replay is unchanged and a replay with different steps is mixed: it
    differs, and nothing measured says whether for better or worse.
    """
    signals = {(error_delta > 0) - (error_delta < 0), spend}
    if signals == {0}:
        return "mixed" if any_step_differs else "unchanged"
    if 1 in signals and -1 in signals:
        return "mixed"
    return "regressed" if 1 in signals else "improved"


def diff_traces(original: dict[str, Any], fork: dict[str, Any]) -> dict[str, Any]:
    a, b = original["spans"], fork["spans"]
    keys: dict[tuple[str, str], int] = {}
    a_keys = [keys.setdefault((s["span_type"], s["name"]), len(keys)) for s in a]
    b_keys = [keys.setdefault((s["span_type"], s["name"]), len(keys)) for s in b]
    steps: list[dict[str, Any]] = []
    first_divergence: dict[str, Any] | None = None
    for index, (i, j) in enumerate(align(a_keys, b_keys)):
        old = a[i] if i is not None else None
        new = b[j] if j is not None else None
        old_text = to_text(old.get("output")) if old else ""
        new_text = to_text(new.get("output")) if new else ""
        if old is not None and new is not None:
            same = old_text == new_text and (old.get("error") or None) == (new.get("error") or None)
            status = "unchanged" if same else "changed"
        else:
            status = "removed" if new is None else "added"
        steps.append(
            {
                "index": index,
                "status": status,
                "original": _summary(old) if old else None,
                "fork": _summary(new) if new else None,
                "output_diff": None if status == "unchanged" else output_diff(old_text, new_text),
            }
        )
        if first_divergence is None and status != "unchanged":
            first_divergence = {
                "index": index,
                "original_span_id": old["id"] if old else None,
                "fork_span_id": new["id"] if new else None,
            }
    tokens_delta = _tokens(fork) - _tokens(original)
    cost_delta = round(float(fork.get("total_cost") or 0) - float(original.get("total_cost") or 0), 10)
    error_delta = _errors(fork) - _errors(original)
    if _has_cost(original) and _has_cost(fork):
        spend = _compare(cost_delta, float(original.get("total_cost") or 0))
    else:
        spend = _compare(tokens_delta, _tokens(original))
    return {
        "original_trace_id": original["id"],
        "fork_trace_id": fork["id"],
        "first_divergence": first_divergence,
        "steps": steps,
        "summary": {
            "tokens_delta": tokens_delta,
            "cost_delta": cost_delta,
            "duration_ms_delta": sum(s.get("duration_ms") or 0 for s in b)
            - sum(s.get("duration_ms") or 0 for s in a),
            "span_count_delta": len(b) - len(a),
            "error_delta": error_delta,
        },
        "verdict": verdict(
            error_delta=error_delta, spend=spend, any_step_differs=first_divergence is not None
        ),
    }
