"""API keys: bearer tokens ``amw_<id>_<secret>``, stored as SHA-256 of the secret, and roles.

A key is 32 random bytes, so a plain SHA-256 (not a slow password hash) is
the right digest: nothing can be guessed from it, and checking a key costs
microseconds on every request. The id is public (shown in listings and the
audit log), the secret is shown once, when the key is created.

Roles:

- ``viewer``: reads everything a dashboard needs (alerts, summary, areas,
  meters, inspections, reports); changes nothing.
- ``operator``: what a viewer may, plus triage, dispatch, cancel, appeals, and the audit log.
- ``inspector``: only the inspections assigned to it (the key's name is the
  inspector's id) and the alerts they cover; records their progress and result.
- ``admin``: what an operator may, plus managing keys.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

__all__ = ["ROLES", "NewKey", "new_key", "parse_key", "hash_secret", "secret_matches", "sign_payload"]

ROLES = ("viewer", "operator", "inspector", "admin")
_PREFIX = "amw"


@dataclass(frozen=True, slots=True)
class NewKey:
    id: str
    secret: str
    token: str  # what the client sends: ``Authorization: Bearer <token>``
    secret_hash: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key() -> NewKey:
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return NewKey(key_id, secret, f"{_PREFIX}_{key_id}_{secret}", hash_secret(secret))


def parse_key(token: str) -> tuple[str, str] | None:
    """``(id, secret)`` of a well-formed token, else None."""
    prefix, _, rest = token.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != _PREFIX or len(key_id) != 12 or not secret:
        return None
    return key_id, secret


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def sign_payload(secret: str, timestamp: str, body: bytes) -> str:
    """Webhook signature: hex HMAC-SHA256 of ``<timestamp>.<body>`` with the shared secret."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
