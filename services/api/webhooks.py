"""Dispatch notifications: inspection events POSTed to the field-service system, from the outbox.

Events are rows of ``webhook_outbox``, written in the transaction of the
change they announce (:mod:`services.api.store.outbox`), so they survive
restarts and exist exactly when their change does. This dispatcher claims
due rows (a lease, so two API processes never send the same row at once),
POSTs each, and records the outcome:

- 2xx: ``delivered``.
- anything else (a 4xx/5xx, a timeout, a refused connection): retry after
  ``backoff · 2^(attempts-1)`` seconds (capped, ±20 % jitter); after
  ``max_attempts`` it is ``dead`` (kept, visible in ``/metrics``, never deleted).

Delivery is at least once (a crash after the POST and before recording it
sends it again): receivers de-duplicate on ``X-Amiwatch-Delivery``.

Each request carries::

    Content-Type: application/json
    X-Amiwatch-Event: inspection.resolved
    X-Amiwatch-Delivery: 42                        (the outbox row id, stable across retries)
    X-Amiwatch-Timestamp: 1768550400               (unix seconds of this attempt)
    X-Amiwatch-Signature: sha256=<hex>             (HMAC-SHA256 of "<timestamp>.<body>" with the shared secret)

The body is ``{"event", "occurred_at", "actor", "inspection"}`` where
``inspection`` is the inspection as ``schemas/inspection.json`` describes it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from datetime import timedelta

import httpx
import orjson

from services.api.core.config import ApiConfig
from services.api.core.security import sign_payload
from services.api.metrics import ApiMetrics
from services.api.store.outbox import claim_due, mark_delivered, mark_failed
from services.api.store.session import Store
from services.api.store.types import utcnow

__all__ = ["WebhookDispatcher", "backoff_s"]

log = logging.getLogger(__name__)


def backoff_s(attempts: int, base: float, cap: float, jitter: float = 0.2) -> float:
    """Delay before the next try after ``attempts`` failed ones."""
    delay = min(cap, base * 2 ** max(0, attempts - 1))
    return delay * (1 + random.uniform(-jitter, jitter))


class WebhookDispatcher:
    """Delivers the outbox until stopped."""

    def __init__(self, store: Store, config: ApiConfig, metrics: ApiMetrics | None = None, client: httpx.AsyncClient | None = None) -> None:
        self.store = store
        self.config = config
        self.metrics = metrics or ApiMetrics()
        self._client = client
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        if not self.config.webhook_url:
            log.info("webhooks: no AMIWATCH_WEBHOOK_URL; events stay in the outbox")
            return
        client = self._client or httpx.AsyncClient(timeout=self.config.webhook_timeout_s)
        try:
            while not self._stop.is_set():
                sent = await self.deliver_due(client)
                if not sent:
                    try:
                        await asyncio.wait_for(self._stop.wait(), self.config.webhook_poll_s)
                    except TimeoutError:
                        pass
        finally:
            if self._client is None:
                await client.aclose()

    def _claim(self) -> list[tuple[int, str, bytes, int]]:
        lease = timedelta(seconds=self.config.webhook_timeout_s * 4 + 10)
        with self.store.write() as session:
            rows = claim_due(session, utcnow(), lease)
            return [(m.id, m.event, orjson.dumps(m.payload), m.attempts) for m in rows]

    async def deliver_due(self, client: httpx.AsyncClient) -> int:
        """Send every due message once; returns how many were tried."""
        due = await asyncio.to_thread(self._claim)
        for message_id, event, body, attempts in due:
            stamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "X-Amiwatch-Event": event,
                "X-Amiwatch-Delivery": str(message_id),
                "X-Amiwatch-Timestamp": stamp,
                "X-Amiwatch-Signature": "sha256=" + sign_payload(self.config.webhook_secret, stamp, body),
            }
            status: int | None = None
            error = ""
            try:
                response = await client.post(self.config.webhook_url, content=body, headers=headers)
                status = response.status_code
                if 200 <= status < 300:
                    await asyncio.to_thread(self._done, message_id, status)
                    self.metrics.webhook_deliveries.labels("delivered").inc()
                    continue
                error = f"HTTP {status}: {response.text[:500]}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            tries = attempts + 1
            if tries >= self.config.webhook_max_attempts:
                retry_at = None
                self.metrics.webhook_deliveries.labels("dead").inc()
                log.error("webhooks: giving up on delivery %d (%s) after %d attempts: %s", message_id, event, tries, error)
            else:
                retry_at = utcnow() + timedelta(seconds=backoff_s(tries, self.config.webhook_backoff_s, self.config.webhook_backoff_max_s))
                self.metrics.webhook_deliveries.labels("retry").inc()
                log.warning("webhooks: delivery %d (%s) failed (%s); retry at %s", message_id, event, error, retry_at)
            await asyncio.to_thread(self._failed, message_id, error, status, retry_at)
        return len(due)

    def _done(self, message_id: int, status: int) -> None:
        with self.store.write() as session:
            mark_delivered(session, message_id, status, utcnow())

    def _failed(self, message_id: int, error: str, status: int | None, retry_at) -> None:  # type: ignore[no-untyped-def]
        with self.store.write() as session:
            mark_failed(session, message_id, error, status, retry_at)
