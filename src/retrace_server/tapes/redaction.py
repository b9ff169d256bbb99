"""Removes secrets from every string of a snapshot before it is published.

Three nets, in this order over each string:
1. the shapes of known credentials (provider keys, tokens, private key blocks), named by kind;
2. the password of a URL (`postgres://user:pass@host`, `redis://:pass@host`, `mongodb+srv://...`);
3. the value next to a secret-looking name written in text (`password=...`, `"api_key": "..."`,
   `DB_PASSWORD: ...`), which catches JSON that travels as a string, such as tool arguments.
A JSON value under a secret-looking key is replaced whatever its form (string, number, nested
object); the key itself stays, so the tape still shows what was there.

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
SECRET_FIELD_KIND = "secret_field"
URL_CREDENTIALS_KIND = "url_credentials"
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
    # This server's keys: `rt_` and 43 random characters, or `rt_live_...` from earlier versions.
    ("retrace_key", r"\brt_(?:live_|test_)[A-Za-z0-9_-]{16,}|\brt_[A-Za-z0-9_-]{40,}"),
    ("aws_access_key", r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b"),
    (
        "aws_secret_key",
        r"(?i)(?<=aws_secret_access_key[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])",
    ),
    ("github_token", r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b"),
    ("jwt", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    ("bearer_token", r"(?i)(?<=\bbearer\s+)[A-Za-z0-9\-._~+/]{16,}=*"),
    ("basic_auth", r"(?i)(?<=\bbasic\s+)[A-Za-z0-9+/]{8,}={0,2}(?![A-Za-z0-9+/=])"),
)

# `scheme://user:password@host`: the password runs to the last `@` before the host.
_URL_PASSWORD = regex.compile(
    r"(?i)(?<=\b[a-z][a-z0-9+.\-]*://[^\s:/@\"'<>]*:)[^\s/\"'<>]*[^\s/\"'<>@](?=@[^\s@/\"'<>]+)"
)

# An HTTP authorization scheme before a credential (`Authorization: Token abc...`) stays readable.
_AUTH_SCHEME = r"(?i:(?:bearer|basic|token|digest|negotiate)[ \t]+)"
# `name: value`, `name=value`, `"name": "value"`: the name is judged by `is_secret_key`.
_ASSIGNMENT = regex.compile(
    r"(?P<key>(?<![A-Za-z0-9_.\-])[A-Za-z_][A-Za-z0-9_.\-]{0,63})[\"']?[ \t]*[:=][ \t]*"
    r"(?:\"(?P<double>(?:[^\"\\\n]|\\.)*)\"|'(?P<single>(?:[^'\\\n]|\\.)*)'"
    rf"|{_AUTH_SCHEME}?(?:\[REDACTED:[a-z_]+\]|(?P<bare>[^\s\"',;&}}\]]+)))"
)

# A name is secret-looking when, letters and digits only, it ends with one of these
# (`api_key`, `X-Api-Key`, `client_secret`, `aws_secret_access_key`, `GITHUB_TOKEN`), or is `auth`.
# Counts such as `max_tokens` or `input_tokens` do not end with `token`.
_SECRET_NAME_ENDINGS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "authorization",
    "credential",
    "credentials",
    "cookie",
    "privatekey",
    "secretkey",
    "accesskey",
    "signingkey",
    "encryptionkey",
    "sessionkey",
)
_SECRET_NAMES = frozenset({"auth", "pwd", "pass"})
_NOT_ALNUM = regex.compile(r"[^a-z0-9]+")
_ONLY_PLACEHOLDERS = regex.compile(rf"\s*{_AUTH_SCHEME}?(?:\s*\[REDACTED:[a-z_]+\]\s*)+")


def is_secret_key(name: str) -> bool:
    compact = _NOT_ALNUM.sub("", name.lower())
    return compact in _SECRET_NAMES or compact.endswith(_SECRET_NAME_ENDINGS)


def placeholder(kind: str) -> str:
    return f"[REDACTED:{kind}]"


@dataclass
class Redactor:
    """Applies built-in and caller patterns to strings, counting replacements by kind."""

    patterns: list[tuple[str, regex.Pattern[str]]]
    counts: Counter[str] = field(default_factory=Counter)
    custom_budget_s: float = CUSTOM_PATTERN_BUDGET_S
    _deadline: float | None = None

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def redact(self, value: Any) -> Any:
        """A copy of a JSON-like value whose strings have their secrets replaced; keys are kept."""
        if isinstance(value, str):
            return self._redact_string(value)
        if isinstance(value, dict):
            return {
                key: self._redact_secret_value(item) if is_secret_key(str(key)) else self.redact(item)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [self.redact(item) for item in value]
        return value

    def _redact_secret_value(self, value: Any) -> Any:
        """Everything under a secret-looking key, whatever its form; containers keep their keys."""
        if isinstance(value, dict):
            return {key: self._redact_secret_value(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._redact_secret_value(item) for item in value]
        if value is None or isinstance(value, bool) or value == "":
            return value  # nothing secret to hide
        if isinstance(value, str) and _ONLY_PLACEHOLDERS.fullmatch(value):
            return value
        kind = self._builtin_kind_of(value) if isinstance(value, str) else None
        kind = kind or SECRET_FIELD_KIND
        self.counts[kind] += 1
        return placeholder(kind)

    def _builtin_kind_of(self, text: str) -> str | None:
        """The kind of a value that is one known credential and nothing else (named after it)."""
        stripped = text.strip()
        for kind, pattern in self.patterns:
            if kind != CUSTOM_KIND and pattern.fullmatch(stripped):
                return kind
        return None

    def _redact_string(self, text: str) -> str:
        for kind, pattern in self.patterns:
            if kind == CUSTOM_KIND:
                continue
            text, replaced = pattern.subn(placeholder(kind), text)
            if replaced:
                self.counts[kind] += replaced
        text, replaced = _URL_PASSWORD.subn(placeholder(URL_CREDENTIALS_KIND), text)
        if replaced:
            self.counts[URL_CREDENTIALS_KIND] += replaced
        if ":" in text or "=" in text:
            text = _ASSIGNMENT.sub(self._redact_assignment, text)
        for kind, pattern in self.patterns:
            if kind == CUSTOM_KIND:
                text = self._redact_custom(pattern, text)
        return text

    def _redact_assignment(self, match: regex.Match[str]) -> str:
        whole = match.group(0)
        group = next((name for name in ("double", "single", "bare") if match.group(name) is not None), None)
        if group is None:
            return whole  # an earlier pass already replaced the value
        value = match.group(group)
        if not is_secret_key(match.group("key")) or not value or _ONLY_PLACEHOLDERS.fullmatch(value):
            return whole
        self.counts[SECRET_FIELD_KIND] += 1
        start, end = match.span(group)
        offset = match.start()
        return whole[: start - offset] + placeholder(SECRET_FIELD_KIND) + whole[end - offset :]

    def _redact_custom(self, pattern: regex.Pattern[str], text: str) -> str:
        if self._deadline is None:
            self._deadline = time.monotonic() + self.custom_budget_s
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


def make_redactor(
    custom_patterns: list[str], *, custom_budget_s: float = CUSTOM_PATTERN_BUDGET_S
) -> Redactor:
    custom = [(CUSTOM_KIND, pattern) for pattern in compile_custom_patterns(custom_patterns)]
    return Redactor(patterns=[*_BUILTIN, *custom], custom_budget_s=custom_budget_s)
