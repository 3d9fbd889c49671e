"""API keys in the store: create (the secret is returned once), list, revoke, authenticate."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.api.core.security import ROLES, NewKey, new_key, parse_key, secret_matches
from services.api.store.common import Actor, Conflict, Invalid, NotFound, audit
from services.api.store.models import ApiKey
from services.api.store.types import iso, utcnow

__all__ = ["create_key", "list_keys", "revoke_key", "authenticate", "key_view"]


def key_view(k: ApiKey) -> dict[str, Any]:
    return {
        "id": k.id, "name": k.name, "role": k.role, "created_at": iso(k.created_at),
        "created_by": k.created_by, "revoked_at": iso(k.revoked_at),
    }  # fmt: skip


def create_key(session: Session, role: str, name: str, actor: Actor) -> tuple[ApiKey, NewKey]:
    if role not in ROLES:
        raise Invalid(f"role must be one of {', '.join(ROLES)}")
    new = new_key()
    key = ApiKey(id=new.id, name=name, role=role, secret_hash=new.secret_hash, created_at=utcnow(), created_by=actor.name)
    session.add(key)
    session.flush()
    audit(session, actor, "key.create", "api_key", key.id, None, key_view(key))
    return key, new


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)))


def revoke_key(session: Session, key_id: str, actor: Actor) -> ApiKey:
    key = session.get(ApiKey, key_id, with_for_update=True)
    if key is None:
        raise NotFound(f"key {key_id} not found")
    if key.revoked_at is not None:
        raise Conflict(f"key {key_id} is already revoked")
    before = key_view(key)
    key.revoked_at = utcnow()
    audit(session, actor, "key.revoke", "api_key", key.id, before, key_view(key))
    return key


def authenticate(session: Session, token: str) -> Actor | None:
    """The actor a bearer token stands for, or None (unknown, malformed, revoked)."""
    parsed = parse_key(token)
    if parsed is None:
        return None
    key = session.get(ApiKey, parsed[0])
    if key is None or key.revoked_at is not None or not secret_matches(parsed[1], key.secret_hash):
        return None
    return Actor(key.name, key.role, key.id)
