"""Which limit applies to a request: reads or writes, per tier, from the settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from retrace_server.config import Settings

RequestKind = Literal["read", "write"]

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Searches and the tape preview are POSTs only because their questions are bodies; they change
# nothing. The guardrail check is a question the SDK asks after every step: counted as a write it
# would spend a plan's writes many times faster than the traces it guards.
_READ_POST_PATHS = frozenset(
    {"/api/v1/search", "/api/v1/memory/search", "/api/v1/tapes/preview", "/api/v1/enforcement/check"}
)


def request_kind(method: str, path: str) -> RequestKind:
    if method in _READ_METHODS:
        return "read"
    if method == "POST" and path.rstrip("/") in _READ_POST_PATHS:
        return "read"
    return "write"


@dataclass(frozen=True)
class TierLimits:
    read: int
    write: int

    def for_kind(self, kind: RequestKind) -> int:
        return self.read if kind == "read" else self.write


@dataclass(frozen=True)
class RatePolicy:
    """Requests per minute: per user by tier, and per client IP when unauthenticated."""

    tiers: dict[str, TierLimits]
    per_ip: int
    auth_failures_per_ip: int

    @classmethod
    def from_settings(cls, settings: Settings) -> RatePolicy:
        return cls(
            tiers={
                "free": TierLimits(read=settings.rate_limit_free_read, write=settings.rate_limit_free_write),
                "pro": TierLimits(read=settings.rate_limit_pro_read, write=settings.rate_limit_pro_write),
            },
            per_ip=settings.rate_limit_ip,
            auth_failures_per_ip=settings.rate_limit_auth_failures,
        )

    def user_limit(self, tier: str, kind: RequestKind) -> int:
        return self.tiers.get(tier, self.tiers["free"]).for_kind(kind)
