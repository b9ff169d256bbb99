"""Refusals of the search domain."""

from __future__ import annotations

from retrace_server.errors import InvalidInput


class SemanticSearchOff(InvalidInput):
    def __init__(self) -> None:
        super().__init__("Semantic search is off on this server (RETRACE_EMBEDDER=none); use mode=lexical")
