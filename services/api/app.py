"""The API service: ``create_app()`` builds the FastAPI app; its lifespan runs the background work.

At startup the app migrates the database (Alembic, to head), then — unless
told not to — starts the alert sink, the readings-context sink and the
webhook dispatcher as tasks of its event loop. At shutdown (SIGTERM from
``amiwatch up`` or uvicorn's Ctrl-C) each finishes what it holds: a sink
applies and commits its current batch, the dispatcher records its current
delivery.

Routes (``api/routes``) are thin: they parse, check the role, open a
transaction and call the store (``store/``), whose errors map to statuses
here: NotFound 404, Forbidden 403, Conflict 409, Invalid 422.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from aiokafka.client import AIOKafkaClient
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api.api.responses import reject_unknown_query
from services.api.api.routes import alerts, audit, health, inspections, keys, reports, summary
from services.api.core.config import ApiConfig, load_config
from services.api.metrics import ApiMetrics
from services.api.sink import AlertSink, ContextSink
from services.api.store.common import Conflict, Forbidden, Invalid, NotFound, StoreError
from services.api.store.migrate import upgrade
from services.api.store.session import Store
from services.api.webhooks import WebhookDispatcher

__all__ = ["create_app", "API_PREFIX"]

log = logging.getLogger(__name__)
API_PREFIX = "/api/v1"
_STATUS = {NotFound: 404, Forbidden: 403, Conflict: 409, Invalid: 422}


class Readiness:
    """``/readyz``: the database answers ``SELECT 1`` and a Kafka broker answers a metadata request.

    Results are cached for ``ttl`` seconds so a tight probe loop costs nothing.
    """

    def __init__(self, store: Store, config: ApiConfig, ttl: float = 2.0) -> None:
        self.store, self.config, self.ttl = store, config, ttl
        self._at = 0.0
        self._last: dict[str, dict[str, Any]] = {}

    async def _kafka(self) -> None:
        client = AIOKafkaClient(bootstrap_servers=self.config.bootstrap_servers, request_timeout_ms=int(self.config.readiness_timeout_s * 1000))
        try:
            await asyncio.wait_for(client.bootstrap(), self.config.readiness_timeout_s)
        finally:
            await client.close()

    async def check(self) -> dict[str, dict[str, Any]]:
        if time.monotonic() - self._at < self.ttl and self._last:
            return self._last
        out: dict[str, dict[str, Any]] = {}
        try:
            await asyncio.wait_for(asyncio.to_thread(self.store.ping), self.config.readiness_timeout_s)
            out["database"] = {"ok": True}
        except Exception as exc:  # any failure is "not ready", with the reason
            out["database"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
        try:
            await self._kafka()
            out["kafka"] = {"ok": True}
        except Exception as exc:
            out["kafka"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
        self._at, self._last = time.monotonic(), out
        return out


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, before any route reads them.

    A declared ``Content-Length`` is checked up front; a chunked body is read
    here (up to the limit) and handed on, so no route ever holds more.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        too_big = JSONResponse({"detail": f"request body larger than {self.limit} bytes"}, status_code=413)
        if declared is not None:
            try:
                if int(declared) > self.limit:
                    return await too_big(scope, receive, send)
            except ValueError:
                return await JSONResponse({"detail": "malformed Content-Length"}, status_code=400)(scope, receive, send)
            return await self.app(scope, receive, send)
        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                return await too_big(scope, receive, send)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _route_template(scope: Scope) -> str:
    """The matched route's path template with its router prefix (``/api/v1/alerts/{alert_id}``).

    FastAPI ≥ 0.120 leaves the router-relative route in ``scope["route"]`` and the
    full template in its effective route context; older versions had it on the route.
    """
    context = (scope.get("fastapi") or {}).get("effective_route_context")
    template = getattr(context, "path_format", None) or getattr(scope.get("route"), "path_format", None)
    return template or "unmatched"


class RequestMetrics:
    """Duration and count of every request, labelled by the matched route's template."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            template = _route_template(scope)
            method = scope["method"]
            self.metrics.request_seconds.labels(method, template).observe(time.perf_counter() - started)
            self.metrics.requests.labels(method, template, str(status)).inc()


def create_app(config: ApiConfig | None = None, *, background: bool = True) -> FastAPI:
    """The API app. ``background=False`` runs no sinks or dispatcher (tests drive those themselves)."""
    config = config or load_config()
    store = Store(config.database_url)
    metrics = ApiMetrics(store)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(upgrade, store)
        workers: list[Any] = []
        if background:
            if config.sink_enabled:
                workers += [k(store, config, metrics, max_batch=config.sink_max_batch) for k in (AlertSink, ContextSink)]
            workers.append(WebhookDispatcher(store, config, metrics))
        tasks = [asyncio.create_task(w.run(), name=type(w).__name__) for w in workers]
        app.state.workers = workers
        try:
            yield
        finally:
            for w in workers:
                w.stop()
            for t in tasks:
                try:
                    await asyncio.wait_for(t, 30)
                except Exception:  # a worker that failed has logged why; shutdown goes on
                    log.exception("%s did not stop cleanly", t.get_name())
            store.dispose()

    app = FastAPI(
        title="amiwatch API",
        version="1.0.0",
        description=(
            "Alerts from amiwatch's detector, their triage, on-site inspections, reports and dashboards.\n\n"
            "Every route under `/api/v1` needs `Authorization: Bearer <API key>` (`amiwatch api create-key`): "
            "`401` without a valid key, `403` when the key's role may not do it. Roles: **viewer** (read), "
            "**operator** (triage, dispatch, appeals, audit), **inspector** (its own inspections), **admin** (keys).\n\n"
            "Errors are `{\"detail\": ...}` with a 4xx status saying what is wrong."
        ),
        lifespan=lifespan,
        dependencies=[Depends(reject_unknown_query)],
    )
    app.state.store = store
    app.state.config = config
    app.state.metrics = metrics
    app.state.readiness = Readiness(store, config)

    @app.exception_handler(StoreError)
    async def store_error(_request: Request, exc: StoreError) -> JSONResponse:
        status = _STATUS.get(type(exc), 400)
        if status == 422:  # the documented validation-error shape
            return JSONResponse({"detail": [{"loc": ["request"], "msg": str(exc), "type": "value_error"}]}, status_code=422)
        return JSONResponse({"detail": str(exc)}, status_code=status)

    app.include_router(health.router)
    for module in (alerts, inspections, summary, reports, audit, keys):
        app.include_router(module.router, prefix=API_PREFIX)
    app.add_middleware(BodyLimit, limit=config.max_body_bytes)
    app.add_middleware(RequestMetrics, metrics=metrics)
    return app
