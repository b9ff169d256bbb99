"""What each policy kind decides, given a run's counted usage. Pure: no database, no clock."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from retrace_server.enforcement.schemas import DEFAULT_HOLD_TIMEOUT_S

TOOL_KEY_SEPARATOR = "\x1f"


def hash_tool_args(args: Any) -> str:
    """The official SDK's hash of a tool's arguments (`retrace.enforcement.hash_tool_args`), so a
    stored tool span and the check the SDK sent for it name the same arguments."""
    try:
        serialized = args if isinstance(args, str) else json.dumps(args, sort_keys=True, default=str)
    except (TypeError, ValueError):
        serialized = str(args)
    return hashlib.sha256(serialized.encode("utf-8")).hexdigest()[:32]


def tool_key(tool_name: str, args_hash: str | None) -> str:
    """One tool called with one set of arguments (its hash), as the loop counters know it."""
    return f"{tool_name}{TOOL_KEY_SEPARATOR}{args_hash or ''}"


def tool_of_key(key: str) -> str:
    return key.split(TOOL_KEY_SEPARATOR, 1)[0]


def period_start(period: str, now: datetime) -> str:
    """The UTC day (`2026-12-01`) or month (`2026-12`) that `now` falls in."""
    # Formatted by hand: `strftime` cost a tenth of a check that judges a hundred policies.
    if period == "day":
        return f"{now.year:04d}-{now.month:02d}-{now.day:02d}"
    return f"{now.year:04d}-{now.month:02d}"


@dataclass(frozen=True)
class Rule:
    """An enabled policy, ready to judge runs."""

    id: str
    name: str
    kind: str
    action: str
    project_id: str | None
    trace_name: str | None
    spec: Mapping[str, Any]
    tools: frozenset[str] = field(default_factory=frozenset)
    # A budget's ceilings, read out of `spec` once: a check judges every rule.
    max_usd: float | None = None
    max_tokens: float | None = None
    max_steps: float | None = None

    @classmethod
    def from_row(cls, row: Any) -> Rule:
        return cls.of(row.id, row.name, row.kind, row.action, row.project_id, row.trace_name, row.spec)

    @classmethod
    def of(
        cls,
        id: str,
        name: str,
        kind: str,
        action: str,
        project_id: str | None,
        trace_name: str | None,
        spec: Mapping[str, Any] | None,
    ) -> Rule:
        settings = dict(spec or {})
        return cls(
            id=id,
            name=name,
            kind=kind,
            action=action,
            project_id=project_id,
            trace_name=trace_name,
            spec=settings,
            tools=frozenset(settings.get("tools") or ()),
            max_usd=settings.get("max_usd"),
            max_tokens=settings.get("max_tokens"),
            max_steps=settings.get("max_steps"),
        )

    def applies_to(self, *, project_id: str | None, trace_name: str | None) -> bool:
        """A narrowed policy applies only once the run is known to be of its project and name."""
        if self.project_id is not None and project_id != self.project_id:
            return False
        return self.trace_name is None or trace_name == self.trace_name

    @property
    def timeout_s(self) -> int:
        return int(self.spec.get("timeout_s") or DEFAULT_HOLD_TIMEOUT_S)

    @property
    def on_timeout(self) -> str:
        return str(self.spec.get("on_timeout") or "deny")

    def scope_in(self, starts: PeriodStarts) -> str:
        """The spend a period budget watches at the moment of `starts`:
        `day|<project>|<trace name>@2026-12-01`."""
        period, head = self._scope_head
        return head + starts[period]

    @cached_property
    def _scope_head(self) -> tuple[str, str]:
        period = str(self.spec["period"])
        return period, f"{period}|{self.project_id or '*'}|{self.trace_name or '*'}@"


class PeriodStarts(dict[str, str]):
    """`period_start` of each period for one moment, each formatted once however many budgets
    ask."""

    def __init__(self, now: datetime) -> None:
        super().__init__()
        self._now = now

    def __missing__(self, period: str) -> str:
        start = self[period] = period_start(period, self._now)
        return start


def period_scopes(rules: Iterable[Rule], now: datetime) -> list[str]:
    """The scopes the period budgets among `rules` watch now, in rule order."""
    starts = PeriodStarts(now)
    return [rule.scope_in(starts) for rule in rules if rule.kind == "period_budget"]


def scope_identity(scope: str) -> str:
    """A scope without its period start: what a run has been counted into, across midnight."""
    return scope.rpartition("@")[0]


_APPLICABLE_PAIRS = 1024


@dataclass(frozen=True)
class RuleSet:
    """A user's enabled policies at one revision of their policy set."""

    revision: int
    rules: tuple[Rule, ...]

    @cached_property
    def needs_trace_name(self) -> bool:
        return any(rule.trace_name is not None for rule in self.rules)

    @cached_property
    def needs_project(self) -> bool:
        return any(rule.project_id is not None for rule in self.rules)

    def applicable(self, *, project_id: str | None, trace_name: str | None) -> Applicable:
        """The rules of runs of this project and name, remembered per pair (a run asks at every
        step)."""
        known = self._applicable.get((project_id, trace_name))
        if known is None:
            if len(self._applicable) >= _APPLICABLE_PAIRS:
                self._applicable.clear()
            known = self._applicable[(project_id, trace_name)] = Applicable(
                r for r in self.rules if r.applies_to(project_id=project_id, trace_name=trace_name)
            )
        return known

    @cached_property
    def _applicable(self) -> dict[tuple[str | None, str | None], Applicable]:
        return {}


class Applicable(tuple[Rule, ...]):
    """Rules that apply to one run, in policy order, with the lowest of their ceilings: usage
    under all of them breaks none, which a check learns without judging each rule."""

    @cached_property
    def _floors(self) -> _Floors:
        return _Floors.of(self)

    def may_trip(self, usage: Usage, tool_names: Iterable[str], starts: PeriodStarts) -> bool:
        return self._floors.reached(usage, tool_names, starts)


def _lowest(values: Iterable[float | None]) -> float | None:
    return min((v for v in values if v is not None), default=None)


@dataclass(frozen=True)
class _Floors:
    run_usd: float | None
    run_tokens: float | None
    run_steps: float | None
    # (period, scope head) -> the lowest (max_usd, max_tokens) of its budgets
    periods: Mapping[tuple[str, str], tuple[float | None, float | None]]
    repeats: int | None
    tools: frozenset[str]

    @classmethod
    def of(cls, rules: Iterable[Rule]) -> _Floors:
        runs = [r for r in rules if r.kind == "run_budget"]
        by_scope: dict[tuple[str, str], list[Rule]] = {}
        for rule in rules:
            if rule.kind == "period_budget":
                by_scope.setdefault(rule._scope_head, []).append(rule)
        loops = [int(r.spec["max_repeats"]) for r in rules if r.kind == "tool_loop"]
        return cls(
            run_usd=_lowest(r.max_usd for r in runs),
            run_tokens=_lowest(r.max_tokens for r in runs),
            run_steps=_lowest(r.max_steps for r in runs),
            periods={
                head: (_lowest(r.max_usd for r in group), _lowest(r.max_tokens for r in group))
                for head, group in by_scope.items()
            },
            repeats=min(loops, default=None),
            tools=frozenset().union(*(r.tools for r in rules if r.kind in ("tool_deny", "tool_approval"))),
        )

    def reached(self, usage: Usage, tool_names: Iterable[str], starts: PeriodStarts) -> bool:
        if _over(usage.usd, self.run_usd) or _over(usage.tokens, self.run_tokens):
            return True
        if _over(usage.steps, self.run_steps):
            return True
        for (period, head), (usd_floor, tokens_floor) in self.periods.items():
            tokens, usd = usage.periods.get(head + starts[period], (0, 0.0))
            if _over(usd, usd_floor) or _over(tokens, tokens_floor):
                return True
        if self.repeats is not None and any(n > self.repeats for n in usage.tool_counts.values()):
            return True
        return not self.tools.isdisjoint(tool_names)


@dataclass(frozen=True)
class Usage:
    """A run's counted usage, with the counters of the period scopes and tools asked about."""

    steps: int
    tokens: int
    usd: float
    periods: Mapping[str, tuple[int, float]] = field(default_factory=dict)
    tool_counts: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Trip:
    rule: Rule
    reason: str


def _money(value: float) -> str:
    return "$" + (f"{value:.6f}".rstrip("0").rstrip(".") or "0")


def _over(value: float, ceiling: Any) -> bool:
    return ceiling is not None and value > ceiling


def budget_trip(rule: Rule, usage: Usage, starts: PeriodStarts) -> Trip | None:
    """run_budget and period_budget: a ceiling is broken once usage goes over it."""
    spec = rule.spec
    if rule.kind == "run_budget":
        if _over(usage.usd, rule.max_usd):
            return _trip(rule, f"the run cost {_money(usage.usd)}, over max_usd {_money(spec['max_usd'])}")
        if _over(usage.tokens, rule.max_tokens):
            return _trip(rule, f"the run used {usage.tokens} tokens, over max_tokens {spec['max_tokens']}")
        if _over(usage.steps, rule.max_steps):
            return _trip(rule, f"the run took {usage.steps} steps, over max_steps {spec['max_steps']}")
        return None
    if rule.kind == "period_budget":
        tokens, usd = usage.periods.get(rule.scope_in(starts), (0, 0.0))
        when = "today" if spec["period"] == "day" else "this month"
        if _over(usd, rule.max_usd):
            return _trip(rule, f"spend {when} is {_money(usd)}, over max_usd {_money(spec['max_usd'])}")
        if _over(tokens, rule.max_tokens):
            return _trip(rule, f"{tokens} tokens used {when}, over max_tokens {spec['max_tokens']}")
    return None


def loop_trip(rule: Rule, tool_counts: Mapping[str, int]) -> Trip | None:
    limit = int(rule.spec["max_repeats"])
    for key, count in tool_counts.items():
        if count > limit:
            return _trip(
                rule,
                f"tool {tool_of_key(key)!r} was called {count} times with the same arguments, "
                f"over max_repeats {limit}",
            )
    return None


def tool_trip(rule: Rule, tool_names: Iterable[str]) -> Trip | None:
    """tool_deny and tool_approval: the run calls one of the listed tools."""
    for name in tool_names:
        if name in rule.tools:
            if rule.kind == "tool_deny":
                return _trip(rule, f"tool {name!r} is denied")
            return _trip(rule, f"tool {name!r} needs approval")
    return None


def _trip(rule: Rule, detail: str) -> Trip:
    return Trip(rule=rule, reason=f"Policy {rule.name!r} ({rule.kind}): {detail}")


def trips(rules: Iterable[Rule], usage: Usage, *, tool_names: Iterable[str], now: datetime) -> list[Trip]:
    """Every rule the usage breaks, in policy order."""
    names = list(tool_names)
    starts = PeriodStarts(now)
    if isinstance(rules, Applicable) and not rules.may_trip(usage, names, starts):
        return []
    found = []
    for rule in rules:
        trip: Trip | None
        if rule.kind in ("run_budget", "period_budget"):
            trip = budget_trip(rule, usage, starts)
        elif rule.kind == "tool_loop":
            trip = loop_trip(rule, usage.tool_counts)
        else:
            trip = tool_trip(rule, names)
        if trip is not None:
            found.append(trip)
    return found
