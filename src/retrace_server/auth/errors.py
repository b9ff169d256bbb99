"""Refusals of the auth domain."""

from __future__ import annotations

from retrace_server.errors import DomainError

CREDENTIALS_HELP = "send `x-retrace-key: rt_...` or `Authorization: Bearer <jwt>`"


class Unauthenticated(DomainError):
    """No credentials, or credentials that do not verify."""

    status = 401


class CredentialsRequired(Unauthenticated):
    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or f"Authentication required: {CREDENTIALS_HELP}")


class InvalidCredentials(Unauthenticated):
    pass
