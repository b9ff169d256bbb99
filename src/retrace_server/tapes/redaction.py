"""Removes secrets from every string of a snapshot before it is published.

The `regex` engine is used (not `re`) because it can stop a caller's pattern that backtracks
catastrophically; a published tape must never hang a worker.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import regex

from retrace_server.tapes.errors import InvalidRedactionPattern

CUSTOM_KIND = "custom"
MAX_CUSTOM_PATTERNS = 20
MAX_PATTERN_LENGTH = 1000
# Budget for the caller's own patterns over the whole snapshot.
CUSTOM_PATTERN_BUDGET_S = 5.0

# Order matters: the most specific shapes first, so that `sk-ant-...` is named Anthropic
# rather than OpenAI, and a key inside a `Bearer` header is named after its provider.
BUILTIN_PATTERNS: tuple[tuple[str, str], ...] = (
    (
        "private_key",
        r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
        r"[\s\S]*?-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----",
    ),
    ("anthropic_key", r"\bsk-ant-[A-Za-z0-9_-]{16,}"),
    ("openai_key", r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"),
    ("retrace_key", r"\brt_live_[A-Za-z0-9_-]{16,}"),
    ("aws_access_key", r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b"),
    (
        "aws_secret_key",
        r"(?i)(?<=aws_secret_access_key[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])",
    ),
    ("github_token", r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b"),
    ("jwt", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    ("bearer_token", r"(?i)(?<=\bbearer\s+)[A-Za-z0-9\-._~+/]{16,}=*"),
)


def placeholder(kind: str) -> str:
    return f"[REDACTED:{kind}]"


@dataclass
class Redactor:
    """Applies built-in and caller patterns to strings, counting replacements by kind."""

    patterns: list[tuple[str, regex.Pattern[str]]]
    counts: Counter[str] = field(default_factory=Counter)
    _deadline: float | None = None

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def redact(self, value: Any) -> Any:
        """A copy of a JSON-like value whose strings have their secrets replaced; keys are kept."""
        if isinstance(value, str):
            return self._redact_string(value)
        if isinstance(value, dict):
            return {key: self.redact(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.redact(item) for item in value]
        return value

    def _redact_string(self, text: str) -> str:
        for kind, pattern in self.patterns:
            if kind == CUSTOM_KIND:
                text = self._redact_custom(pattern, text)
                continue
            text, replaced = pattern.subn(placeholder(kind), text)
            if replaced:
                self.counts[kind] += replaced
        return text

    def _redact_custom(self, pattern: regex.Pattern[str], text: str) -> str:
        if self._deadline is None:
            self._deadline = time.monotonic() + CUSTOM_PATTERN_BUDGET_S
        remaining = self._deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise TimeoutError
            text, replaced = pattern.subn(placeholder(CUSTOM_KIND), text, timeout=remaining)
        except TimeoutError:
            raise InvalidRedactionPattern(
                f"redact_patterns: {pattern.pattern!r} takes too long to match; simplify it"
            ) from None
        if replaced:
            self.counts[CUSTOM_KIND] += replaced
        return text


_BUILTIN = [(kind, regex.compile(source)) for kind, source in BUILTIN_PATTERNS]


def compile_custom_patterns(sources: list[str]) -> list[regex.Pattern[str]]:
    """The caller's extra patterns; an invalid one, or one matching nothing but emptiness, is a 400."""
    compiled = []
    for index, source in enumerate(sources):
        try:
            pattern = regex.compile(source)
        except (regex.error, ValueError, OverflowError) as exc:
            raise InvalidRedactionPattern(
                f"redact_patterns[{index}]: invalid regular expression: {exc}"
            ) from None
        if pattern.fullmatch("", timeout=1.0) is not None:
            raise InvalidRedactionPattern(f"redact_patterns[{index}]: the pattern matches the empty string")
        compiled.append(pattern)
    return compiled


def make_redactor(custom_patterns: list[str]) -> Redactor:
    custom = [(CUSTOM_KIND, pattern) for pattern in compile_custom_patterns(custom_patterns)]
    return Redactor(patterns=[*_BUILTIN, *custom])
