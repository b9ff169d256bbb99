"""An RSA key pair of the test's own, signing Clerk-style RS256 tokens."""

from __future__ import annotations

import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


class JwtSigner:
    def __init__(self) -> None:
        self._private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_pem = (
            self._private.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def token(self, sub: str, *, ttl_s: int = 300, **claims: Any) -> str:
        now = int(time.time())
        payload = {"sub": sub, "iat": now, "nbf": now, "exp": now + ttl_s, **claims}
        return jwt.encode(payload, self._private, algorithm="RS256", headers={"kid": "test"})
