"""Per-user and per-IP rate limits (moving one-minute windows)."""

from retrace_server.ratelimit.enforce import ip_rate_limit, limit_user

__all__ = ["ip_rate_limit", "limit_user"]
