"""When each API key was last used (`last_used_at`), written at most once a minute per key."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update

from retrace_server.auth.models import ApiKey
from retrace_server.db.engine import Database
from retrace_server.db.types import utcnow

LAST_USED_RESOLUTION = timedelta(minutes=1)
_MAX_KEYS = 10_000

# Key id -> when this process last wrote its use. The lookup's `last_used_at` is up to a second
# old (verified keys are remembered that long), so without this every request of that second
# would write again.
_written: dict[str, datetime] = {}


async def update_last_used(db: Database, *, key_id: str, last_used_at: datetime | None) -> None:
    now = utcnow()
    seen = max((t for t in (last_used_at, _written.get(key_id)) if t is not None), default=None)
    if seen is not None and now - seen < LAST_USED_RESOLUTION:
        return
    if len(_written) >= _MAX_KEYS:
        _written.clear()
    _written[key_id] = now
    async with db.write() as session:
        await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now))
