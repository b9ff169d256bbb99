"""Refusals of the rate limiter."""

from __future__ import annotations

from retrace_server.errors import DomainError


class RateLimited(DomainError):
    """Over a limit; the `X-RateLimit-*` and `Retry-After` headers go out with the refusal."""

    status = 429
