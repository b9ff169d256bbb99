"""API keys this process verified in the last second, so that a client sending hundreds of
requests a second costs one key lookup per second instead of one per request.

A key revoked or rotated through this process is forgotten at once; through another process
(or the CLI) it keeps working here for at most `TTL_SECONDS`. Only valid keys are remembered,
so a key just created works at once everywhere.
"""

from __future__ import annotations

import time

from retrace_server.auth.identity import CurrentUser

TTL_SECONDS = 1.0
MAX_KEYS = 10_000

_recent: dict[str, tuple[float, CurrentUser]] = {}


def get(key_hash: str) -> CurrentUser | None:
    entry = _recent.get(key_hash)
    if entry is None:
        return None
    expires_at, user = entry
    if time.monotonic() >= expires_at:
        _recent.pop(key_hash, None)
        return None
    return user


def remember(key_hash: str, user: CurrentUser) -> None:
    if len(_recent) >= MAX_KEYS:
        _recent.clear()
    _recent[key_hash] = (time.monotonic() + TTL_SECONDS, user)


def forget_user(user_id: str) -> None:
    """After a user's keys or tier change: their next request looks the key up again."""
    for key_hash in [h for h, (_, user) in _recent.items() if user.id == user_id]:
        _recent.pop(key_hash, None)
