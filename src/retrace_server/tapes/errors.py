"""Refusals of the tapes domain."""

from __future__ import annotations

from retrace_server.errors import InvalidInput, NotFound


class TapeNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("Tape")


class InvalidRedactionPattern(InvalidInput):
    """A `redact_patterns` entry that cannot be used; the message names its index."""
