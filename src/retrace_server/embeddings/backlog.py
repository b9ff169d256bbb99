"""How far semantic indexing is behind: spans waiting in `span_index_queue`, and for how long.

A monitor reads both with one query every few seconds, so `/health` (a liveness probe) answers
from memory, and it logs when the backlog keeps growing while its oldest span waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select

from retrace_server.db.engine import Database
from retrace_server.db.types import utcnow
from retrace_server.embeddings.models import SpanIndexQueue
from retrace_server.embeddings.schemas import IndexingStatus

log = logging.getLogger("retrace.indexer")

REFRESH_S = 5.0
# A backlog whose oldest span waited this long and which grew since the last look is reported,
# at most once per WARN_EVERY_S.
BEHIND_S = 30.0
WARN_EVERY_S = 60.0


@dataclass(frozen=True)
class Backlog:
    spans: int
    oldest_queued_at: datetime | None
    checked_at: datetime

    def status(self) -> IndexingStatus:
        age = (utcnow() - self.oldest_queued_at).total_seconds() if self.oldest_queued_at else 0.0
        return IndexingStatus(
            backlog=self.spans, oldest_age_s=round(max(age, 0.0), 1), checked_at=self.checked_at
        )


async def read_backlog(db: Database) -> Backlog:
    async with db.read() as session:
        count, oldest = (
            await session.execute(select(func.count(), func.min(SpanIndexQueue.queued_at)))
        ).one()
    if isinstance(oldest, str):  # min() over SQLite text loses the column's type
        oldest = datetime.fromisoformat(oldest)
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    return Backlog(spans=int(count), oldest_queued_at=oldest, checked_at=utcnow())


class BacklogMonitor:
    def __init__(self, db: Database, *, refresh_s: float = REFRESH_S) -> None:
        self.db = db
        self.refresh_s = refresh_s
        self.latest: Backlog | None = None
        self._warned_at: float | None = None
        self._warned_backlog = 0

    def status(self) -> IndexingStatus | None:
        return self.latest.status() if self.latest is not None else None

    async def refresh(self) -> Backlog:
        previous, current = self.latest, await read_backlog(self.db)
        self.latest = current
        self._report(previous, current)
        return current

    def _report(self, previous: Backlog | None, current: Backlog) -> None:
        age = current.status().oldest_age_s
        growing = previous is not None and current.spans > previous.spans
        now = time.monotonic()
        if growing and age >= BEHIND_S:
            if self._warned_at is None or now - self._warned_at >= WARN_EVERY_S:
                change = (
                    f", {current.spans - self._warned_backlog:+,} since the last report"
                    if self._warned_at is not None
                    else ""
                )
                log.warning(
                    "Semantic indexing is behind and the backlog is growing: %s spans waiting%s, "
                    "the oldest for %.0fs",
                    f"{current.spans:,}",
                    change,
                    age,
                )
                self._warned_at, self._warned_backlog = now, current.spans
        elif current.spans == 0 and self._warned_at is not None:
            log.info("Semantic indexing has caught up")
            self._warned_at = None

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("Could not read the indexing backlog", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.refresh_s)
