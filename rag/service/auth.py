"""Bearer-key authentication: only the keys' SHA-256 digests are kept, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from fastapi import Request

from rag.service.openai_schema import ApiError


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


class ApiKeys:
    """The configured keys, as digests. With none configured, every request is allowed."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = [_digest(key) for key in keys if key]

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def allows(self, authorization: str | None) -> bool:
        """True for an `Authorization: Bearer <key>` header naming one of the keys (or when auth is off)."""
        if not self.enabled:
            return True
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        candidate = _digest(token.strip())
        # Compare against every key, so the time taken does not tell which one (if any) matched.
        matches = [hmac.compare_digest(candidate, digest) for digest in self._digests]
        return any(matches)

    async def __call__(self, request: Request) -> None:
        """FastAPI dependency: 401 in OpenAI's error format unless the request carries a valid key."""
        if not self.allows(request.headers.get("authorization")):
            raise ApiError(
                401,
                "Invalid or missing API key: send `Authorization: Bearer <key>`.",
                code="invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )
