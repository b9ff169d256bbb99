"""Why an OTLP export is refused whole; each answers the status the OTLP specification gives it."""

from __future__ import annotations

from retrace_server.errors import DomainError, InvalidInput


class UndecodableBody(InvalidInput):
    """Not an OTLP message in the declared encoding: the exporter must not send it again."""


class UnsupportedMediaType(DomainError):
    status = 415


class PayloadTooLarge(DomainError):
    status = 413
