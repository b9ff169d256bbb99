"""RS256 Bearer JWTs, Clerk-compatible: `sub` is the user, `azp` the authorised party."""

from __future__ import annotations

from typing import Any

import anyio
import jwt

from retrace_server.auth.errors import InvalidCredentials
from retrace_server.config import Settings

_LEEWAY_S = 5


class JwtVerifier:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._jwks = (
            jwt.PyJWKClient(settings.jwt_jwks_url, cache_keys=True) if settings.jwt_jwks_url else None
        )

    @property
    def configured(self) -> bool:
        return bool(self._settings.jwt_public_key or self._jwks)

    async def verify(self, token: str) -> dict[str, Any]:
        """Returns the claims of a valid token; raises InvalidCredentials otherwise."""
        if not self.configured:
            raise InvalidCredentials("Bearer tokens are not accepted: the server has no JWT key configured")
        try:
            key: Any
            if self._settings.jwt_public_key:
                key = self._settings.jwt_public_key
            else:
                assert self._jwks is not None
                key = (await anyio.to_thread.run_sync(self._jwks.get_signing_key_from_jwt, token)).key
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                issuer=self._settings.jwt_issuer,
                leeway=_LEEWAY_S,
                options={"require": ["exp", "sub"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidCredentials("Bearer token has expired") from None
        except (jwt.PyJWTError, ValueError) as exc:
            raise InvalidCredentials(f"Invalid bearer token: {exc}") from None
        parties = self._settings.authorized_parties
        azp = claims.get("azp")
        if parties and azp is not None and azp not in parties:
            raise InvalidCredentials("Invalid bearer token: unauthorised party (azp)")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub or len(sub) > 128:
            raise InvalidCredentials("Invalid bearer token: `sub` must be a user id of 1-128 characters")
        return claims
