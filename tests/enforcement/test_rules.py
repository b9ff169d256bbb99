"""Judging rules: the shortcut through the rules' lowest ceilings finds exactly the trips that
judging every rule finds."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

from retrace_server.enforcement.rules import Rule, RuleSet, Usage, period_scopes, tool_key, trips

NOW = datetime(2026, 12, 1, 22, 0, tzinfo=UTC)
TOOLS = ("search", "refund_order", "wire_money", "rm_rf")


def _rule(n: int, kind: str, spec: dict[str, Any]) -> Rule:
    return Rule.of(f"p{n}", f"policy {n}", kind, "block", None, None, spec)


def _random_rules(rng: random.Random) -> list[Rule]:
    rules = []
    for n in range(rng.randint(1, 12)):
        kind = rng.choice(("run_budget", "period_budget", "tool_loop", "tool_deny", "tool_approval"))
        spec: dict[str, Any]
        if kind == "run_budget":
            spec = {
                name: value
                for name, value in (
                    ("max_usd", rng.uniform(0.01, 2)),
                    ("max_tokens", rng.randint(100, 5000)),
                    ("max_steps", rng.randint(1, 30)),
                )
                if rng.random() < 0.6
            } or {"max_steps": 10}
        elif kind == "period_budget":
            spec = {"period": rng.choice(("day", "month")), "max_usd": rng.uniform(0.5, 5)}
            if rng.random() < 0.5:
                spec["max_tokens"] = rng.randint(1000, 20_000)
        elif kind == "tool_loop":
            spec = {"max_repeats": rng.randint(1, 5)}
        else:
            spec = {"tools": rng.sample(TOOLS, rng.randint(1, 2))}
        rules.append(_rule(n, kind, spec))
    return rules


def _random_usage(rng: random.Random, rules: list[Rule]) -> tuple[Usage, list[str]]:
    tools = rng.sample(TOOLS, rng.randint(0, 1))
    return (
        Usage(
            steps=rng.randint(1, 40),
            tokens=rng.randint(0, 8000),
            usd=rng.uniform(0, 3),
            periods={
                scope: (rng.randint(0, 30_000), rng.uniform(0, 8)) for scope in period_scopes(rules, NOW)
            },
            tool_counts={tool_key(name, "h"): rng.randint(1, 7) for name in tools},
        ),
        tools,
    )


def test_the_shortcut_finds_the_same_trips_as_judging_every_rule() -> None:
    rng = random.Random(17)
    tripped = untripped = 0
    for revision in range(400):
        rules = _random_rules(rng)
        applicable = RuleSet(revision=revision, rules=tuple(rules)).applicable(
            project_id=None, trace_name=None
        )
        for _ in range(10):
            usage, tools = _random_usage(rng, rules)
            expected = trips(list(rules), usage, tool_names=tools, now=NOW)
            assert trips(applicable, usage, tool_names=tools, now=NOW) == expected
            tripped += bool(expected)
            untripped += not expected
    assert tripped > 200 and untripped > 200, "both outcomes are exercised"
