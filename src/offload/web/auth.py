"""API tokens and their roles (``offload.api.tokens = token:role, ...``).

Tokens are compared as SHA-256 digests with ``hmac.compare_digest`` against every configured entry (no early
exit), so neither the content nor the length of a token leaks through timing. Only digests are kept in memory
after start-up, and a dashboard session stores a digest, never the token. Tokens are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping

from offload.web.actions import ROLES

TOKEN_HEADERS = ("Authorization", "X-CKAN-API-Key")


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


class TokenTable:
    """The configured tokens as (digest, role) pairs."""

    def __init__(self, entries: Iterable[str]) -> None:
        table: list[tuple[str, str]] = []
        for entry in entries:
            token, _, role = entry.rpartition(":")
            if not token or role not in ROLES:
                raise ValueError("offload.api.tokens entries must look like token:admin or token:read")
            table.append((digest(token), role))
        self._entries = tuple(table)

    def __bool__(self) -> bool:
        return bool(self._entries)

    def role_for_digest(self, token_digest: str | None) -> str | None:
        """The role of the token with this digest (the highest if listed twice), or None."""
        if not token_digest:
            return None
        found: str | None = None
        for known, role in self._entries:
            if hmac.compare_digest(known.encode(), token_digest.encode()) and (
                found is None or ROLES.index(role) > ROLES.index(found)
            ):
                found = role
        return found

    def describe_digest(self, token_digest: str | None) -> str:
        """Which configured token has this digest, for logs: ``token #2 (admin)`` (its place in
        ``offload.api.tokens``; nothing of the token itself)."""
        for index, (known, role) in enumerate(self._entries, 1):
            if token_digest and hmac.compare_digest(known.encode(), token_digest.encode()):
                return f"token #{index} ({role})"
        return "an unknown token"

    def describe(self, token: str | None) -> str:
        return self.describe_digest(digest(token) if token else None)

    def role_for(self, token: str | None) -> str | None:
        """The role of ``token``, or None if it is not a configured token."""
        return self.role_for_digest(digest(token)) if token else None


def token_from_headers(headers: Mapping[str, str]) -> str | None:
    """The token a request carries: ``Authorization: <token>`` as CKAN sends it (``Bearer <token>`` is also
    accepted), or CKAN's older ``X-CKAN-API-Key`` header."""
    for name in TOKEN_HEADERS:
        value = headers.get(name)
        if value:
            value = value.strip()
            if value[:7].lower() == "bearer ":
                value = value[7:].strip()
            return value or None
    return None
