"""The OpenAPI contract: a schemathesis run against the live API (uvicorn on a free port) finds no 5xx
and no response that breaks the published schema (status codes, content types, bodies).

It runs with an admin key on a store seeded with alerts and an inspection, so
the generated requests reach real rows, real 404s and 409s, as well as the
validation errors of everything malformed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from services.api.app import create_app
from services.api.store import alerts as repo
from services.api.store.common import Actor
from services.api.store.inspections import dispatch
from services.api.store.keys import create_key
from services.api.store.migrate import upgrade
from services.api.store.session import Store
from services.api.store.types import parse_iso
from tests.api.alerts_factory import alert_record, day
from tests.api.helpers import config_for
from tests.conftest import free_ports

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance, negative_data_rejection]


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[tuple[str, dict[str, str]]]:
    """A seeded API served by uvicorn in a thread, ready (database and the real broker); yields (base URL, admin headers).

    ``/readyz`` answers 503 when Kafka is away, which is right and would be a 5xx
    here: the run uses the session's real broker, so the API is really ready.
    """
    url = f"sqlite:///{tmp_path_factory.mktemp('contract') / 'amiwatch.db'}"
    store = Store(url)
    upgrade(store)
    records = [alert_record(f"M{i}", t, area_id="A0001") for i, t in enumerate(("theft_suspected", "meter_stopped", "clock_skew"))]
    records.append(alert_record(type_="area_high_loss", area_id="A0001", evidence={"loss_rate_pct": 12.0}))
    with store.write() as s:
        repo.apply_stream(s, [repo.StreamRecord(r, 0, i) for i, r in enumerate(records)])
        admin = create_key(s, "admin", "contract", Actor("test", "admin"))[1].token
        dispatch(s, [records[0]["alert_id"]], "insp-li", parse_iso(day(3)), None, Actor("test", "operator"))
    store.dispose()
    port = free_ports(1)[0]
    server = uvicorn.Server(uvicorn.Config(create_app(config_for(url, bootstrap_servers=kafka_bootstrap), background=False), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield base, {"Authorization": f"Bearer {admin}"}
    server.should_exit = True
    thread.join(30)


# The document the app publishes; test_served_document_is_this_one checks the live server serves the same.
OPENAPI = create_app(config_for("sqlite://"), background=False).openapi()
schema = schemathesis.openapi.from_dict(OPENAPI)


def test_openapi_document_is_complete(live_api: tuple[str, dict[str, str]]) -> None:
    """Every /api/v1 operation documents 401 and 403, carries the bearer scheme, and bodies have examples."""
    doc = httpx.get(f"{live_api[0]}/openapi.json").json()
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            if path.startswith("/api/v1"):
                assert {"401", "403"} <= set(op["responses"]), (method, path)
                assert op.get("security"), (method, path)
            if "requestBody" in op:
                ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
                assert doc["components"]["schemas"][ref].get("examples"), ref


@schema.parametrize()
@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_no_schema_violations(case: schemathesis.Case, live_api: tuple[str, dict[str, str]]) -> None:
    base, admin = live_api
    case.call_and_validate(base_url=base, headers=admin, checks=CHECKS)


def test_served_document_is_this_one(live_api: tuple[str, dict[str, str]]) -> None:
    """The live server publishes the document the run was generated from (no key needed for it)."""
    r = httpx.get(f"{live_api[0]}/openapi.json")
    assert r.status_code == 200 and r.json() == OPENAPI
