"""Refusals of the memory domain."""

from __future__ import annotations

from retrace_server.errors import Conflict, NotFound


class MemoryNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("Memory")


class MemoryContentTaken(Conflict):
    """A keyed update whose new content is already another entry of the scope."""

    def __init__(self, *, scope: str, memory_id: str) -> None:
        super().__init__(f"The same content is already stored in scope {scope!r} as memory {memory_id}")
