"""Per-user and per-IP rate limits (moving one-minute windows)."""

from retrace_server.ratelimit.enforce import count_failed_authentication, ip_rate_limit, limit_user

__all__ = ["count_failed_authentication", "ip_rate_limit", "limit_user"]
