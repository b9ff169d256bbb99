"""Refusals of the API-keys domain."""

from __future__ import annotations

from retrace_server.errors import NotFound


class ApiKeyNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("API key")
