"""``/api/v1/keys`` (admin): create (the key is shown once), list, revoke."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, status

from services.api.api.deps import Admin, StoreDep
from services.api.api.models import KeyCreated, KeyIn, KeyOut
from services.api.api.responses import AUTH, CONFLICT, NOT_FOUND
from services.api.store import keys as repo

router = APIRouter(prefix="/keys", tags=["keys"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=KeyCreated, responses=AUTH, summary="Create a key")
def create_key(body: KeyIn, store: StoreDep, actor: Admin) -> Any:
    with store.write() as session:
        key, new = repo.create_key(session, body.role, body.name, actor)
        return {**repo.key_view(key), "key": new.token}


@router.get("", response_model=list[KeyOut], responses=AUTH, summary="List keys (never their secrets)")
def list_keys(store: StoreDep, _: Admin) -> Any:
    with store.read() as session:
        return [repo.key_view(k) for k in repo.list_keys(session)]


@router.delete("/{key_id}", response_model=KeyOut, responses={**AUTH, **NOT_FOUND, **CONFLICT}, summary="Revoke a key")
def revoke_key(key_id: Annotated[str, Path(pattern=r"^[0-9a-f]{12}$")], store: StoreDep, actor: Admin) -> Any:
    with store.write() as session:
        return repo.key_view(repo.revoke_key(session, key_id, actor))
