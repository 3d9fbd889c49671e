"""Documented error responses (so the OpenAPI document names every status a route can give) and ETags."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError

from services.api.api.models import Problem

__all__ = ["AUTH", "NOT_FOUND", "CONFLICT", "NOT_MODIFIED", "INVALID", "conditional", "unprocessable", "reject_unknown_query"]

_P = {"model": Problem}
AUTH: dict[int | str, dict[str, Any]] = {
    400: {**_P, "description": "A body that cannot be parsed at all"},
    401: {**_P, "description": "No API key, or an unknown or revoked one"},
    403: {**_P, "description": "The key's role may not do this"},
    413: {**_P, "description": "Request body too large"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {**_P, "description": "No such entity (or not one this key may see)"}}
CONFLICT: dict[int | str, dict[str, Any]] = {409: {**_P, "description": "The entity's current state does not allow this change"}}
INVALID: dict[int | str, dict[str, Any]] = {}
"""422 is documented on every route by FastAPI (``HTTPValidationError``); the store's own 422s use that shape too."""
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not Modified: the `If-None-Match` ETag is still current (no body)"}
}


def unprocessable(message: str, *loc: str) -> RequestValidationError:
    """A 422 in FastAPI's documented shape (``{"detail": [{"loc", "msg", "type"}]}``)."""
    return RequestValidationError([{"loc": loc or ("request",), "msg": message, "type": "value_error"}])


def reject_unknown_query(request: Request) -> None:
    """A query parameter the route does not take is an error (a typo must not silently widen a filter)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    known: set[str] = set()
    stack = [dependant]
    while stack:
        d = stack.pop()
        known.update(p.alias for p in d.query_params)
        stack.extend(d.dependencies)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise unprocessable(f"unknown query parameter(s): {', '.join(unknown)}; this route takes: {', '.join(sorted(known)) or 'none'}", "query", unknown[0])


def conditional(request: Request, tag: str) -> bool:
    """True when ``If-None-Match`` names ``tag`` (weak comparison) or is ``*``."""
    header = request.headers.get("if-none-match")
    if not header:
        return False
    wanted = tag.removeprefix("W/")
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == wanted:
            return True
    return False
