"""Webhooks: every inspection event is signed (HMAC-SHA256), retried with backoff, and survives a restart."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from datetime import timedelta

import httpx
import orjson
from sqlalchemy import select, update

from services.api.metrics import ApiMetrics
from services.api.store.models import OutboxMessage
from services.api.store.session import Store
from services.api.store.types import utcnow
from services.api.webhooks import WebhookDispatcher, backoff_s
from tests.api.alerts_factory import alert_record, day
from tests.api.helpers import api_client, auth, key_for, put_alerts, config_for

SECRET = "s3cret"


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [round(backoff_s(n, 2.0, 60.0, jitter=0)) for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]


def test_signed_retried_and_delivered_after_a_restart(database_url: str) -> None:
    record = alert_record("M7")
    with api_client(database_url) as c:
        put_alerts(c, record)
        r = c.post("/api/v1/inspections", headers=auth(key_for(c, "operator", "op")),
                   json={"alert_ids": [record["alert_id"]], "inspector": "insp-li", "due": day(2)})  # fmt: skip
        assert r.status_code == 201
        c.post(f"/api/v1/inspections/{r.json()['id']}/transitions", headers=auth(key_for(c, "inspector", "insp-li")), json={"status": "accepted"})

    received: list[httpx.Request] = []
    failing = True

    def receiver(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(503 if failing else 204)

    config = config_for(database_url, webhook_url="http://field-service.invalid/hook", webhook_secret=SECRET, webhook_backoff_s=30.0)
    store = Store(database_url)
    try:
        async def one_pass() -> int:
            client = httpx.AsyncClient(transport=httpx.MockTransport(receiver))
            try:  # a new dispatcher each time: what survives is only what the database holds
                return await WebhookDispatcher(store, config, ApiMetrics(), client=client).deliver_due(client)
            finally:
                await client.aclose()

        assert asyncio.run(one_pass()) == 2  # both events tried, both refused
        with store.read() as s:
            rows = list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
        assert [(m.state, m.attempts, m.last_status) for m in rows] == [("pending", 1, 503)] * 2
        assert all(m.next_attempt_at > utcnow() + timedelta(seconds=20) for m in rows)  # backed off
        assert asyncio.run(one_pass()) == 0  # not due yet

        with store.write() as s:  # time passes
            s.execute(update(OutboxMessage).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
        failing = False
        received.clear()
        assert asyncio.run(one_pass()) == 2
        with store.read() as s:
            assert [m.state for m in s.scalars(select(OutboxMessage))] == ["delivered", "delivered"]
    finally:
        store.dispose()

    events = [r.headers["X-Amiwatch-Event"] for r in received]
    assert events == ["inspection.dispatched", "inspection.accepted"]
    for request in received:
        stamp, body = request.headers["X-Amiwatch-Timestamp"], request.content
        expected = hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        assert request.headers["X-Amiwatch-Signature"] == f"sha256={expected}"
        payload = orjson.loads(body)
        assert payload["inspection"]["alert_ids"] == [record["alert_id"]] and payload["event"] == request.headers["X-Amiwatch-Event"]


def test_gives_up_after_max_attempts(sqlite_url: str) -> None:
    record = alert_record("M8")
    with api_client(sqlite_url) as c:
        put_alerts(c, record)
        c.post("/api/v1/inspections", headers=auth(key_for(c, "operator", "op")),
               json={"alert_ids": [record["alert_id"]], "inspector": "i", "due": day(2)})  # fmt: skip
    config = config_for(sqlite_url, webhook_url="http://x.invalid/", webhook_secret=SECRET, webhook_max_attempts=2, webhook_backoff_s=0.0)
    store = Store(sqlite_url)
    metrics = ApiMetrics()

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async def passes() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
            d = WebhookDispatcher(store, config, metrics, client=client)
            await d.deliver_due(client)
            await asyncio.sleep(0.01)
            await d.deliver_due(client)

    try:
        asyncio.run(passes())
        with store.read() as s:
            m = s.scalar(select(OutboxMessage))
        assert (m.state, m.attempts) == ("dead", 2) and "ConnectError" in m.last_error
        assert b'amiwatch_api_webhook_deliveries_total{outcome="dead"} 1.0' in metrics.render()
    finally:
        store.dispose()
