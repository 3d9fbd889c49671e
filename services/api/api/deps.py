"""Dependencies routes receive: the store, the caller (from the bearer key) and role checks.

Every route under ``/api/v1`` depends on :func:`current_actor`: no key, a
malformed, unknown or revoked key → ``401`` with ``WWW-Authenticate:
Bearer``; :func:`require` then answers ``403`` to a role the route does not
allow. ``/healthz``, ``/readyz`` and ``/metrics`` are outside ``/api/v1``
and need no key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from services.api.store.common import Actor
from services.api.store.keys import authenticate
from services.api.store.session import Store

__all__ = ["get_store", "current_actor", "require", "StoreDep", "CurrentActor", "Viewer", "Operator", "Admin", "AnyRole"]

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer amw_…` (`amiwatch api create-key`)")


def get_store(request: Request) -> Store:
    return request.app.state.store


def current_actor(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Actor:
    if credentials is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "an API key is required: Authorization: Bearer <key>",
                            headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
    with get_store(request).read() as session:
        actor = authenticate(session, credentials.credentials)
    if actor is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    request.state.actor = actor
    return actor


CurrentActor = Annotated[Actor, Depends(current_actor)]


def require(*roles: str) -> Callable[[Actor], Actor]:
    """A dependency that lets only ``roles`` through (403 for any other)."""

    def check(actor: CurrentActor) -> Actor:
        if actor.role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {actor.role} may not do this; needs {' or '.join(roles)}")
        return actor

    return check


StoreDep = Annotated[Store, Depends(get_store)]
"""Routes open their transactions themselves (``with store.write() as s``), so a failed commit is
the request's error, never a success already sent."""

VIEWERS = ("viewer", "operator", "admin")
OPERATORS = ("operator", "admin")
ADMINS = ("admin",)
Viewer = Annotated[Actor, Depends(require(*VIEWERS))]
Operator = Annotated[Actor, Depends(require(*OPERATORS))]
Admin = Annotated[Actor, Depends(require(*ADMINS))]
AnyRole = Annotated[Actor, Depends(require(*VIEWERS, "inspector"))]
