"""Starting the three services for a phase and reading their counters.

:class:`Stack` starts any of ingest, detector and API for one
:class:`ServiceEnv` and reads their progress counters in one sample:

=================  =================================================  ===========
sample key         counter (sum over labels)                          service
=================  =================================================  ===========
``messages``       ``amiwatch_ingest_messages_total``                 ingest
``readings``       ``amiwatch_ingest_readings_total`` (accepted and    ingest
                   dead-lettered)
``frames_out``     ``amiwatch_ingest_frames_emitted_total``           ingest
``frames_in``      ``amiwatch_detector_frames_total`` (every result)   detector
``sink_records``   ``amiwatch_api_sink_records_total`` (every result)  API
``alert_records``  end offsets of the alerts topic (no transactions:    broker
                   one offset per record)
=================  =================================================  ===========

Every counter counts committed work (ingest counts after its transaction
commits, the detector after the alerts and state are acknowledged, the
sink after its database transaction), so "done" in a sample means done.
"""

from __future__ import annotations

import urllib.request
from contextlib import closing
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient

from amiwatch.bench.procs import Service, ServiceEnv
from amiwatch.bench.scrape import scrape, total
from amiwatch.settings import Topics

__all__ = ["Stack"]

_COUNTERS = {
    "ingest": {
        "messages": "amiwatch_ingest_messages_total",
        "readings": "amiwatch_ingest_readings_total",
        "frames_out": "amiwatch_ingest_frames_emitted_total",
    },
    "detector": {"frames_in": "amiwatch_detector_frames_total"},
    "api": {"sink_records": "amiwatch_api_sink_records_total"},
}


class Stack:
    """The services of one phase (started on demand) and the alerts topic's end offsets."""

    def __init__(self, env: ServiceEnv) -> None:
        self.env = env
        self.topics = Topics(env.prefix)
        self.services: dict[str, Service] = {}
        self._offsets: KafkaConsumer | None = None

    # -- starting ----------------------------------------------------------------------

    def start_ingest(self) -> Service:
        # --idle-flush 0: frames close by completeness or grace only, never because the bench paused.
        return self._start(Service("ingest", ["ingest", "--worker", "bench", "--idle-flush", "0"], self.env))

    def start_detector(self) -> Service:
        return self._start(Service("detector", ["detect", "--loglevel", "warning"], self.env))

    def start_api(self) -> tuple[Service, str]:
        """Migrate the API's database, create a viewer key in it, start the API; return it and the key.

        The key is made in this process, as ``amiwatch api create-key`` makes it, which spares a
        subprocess's start-up. Call :meth:`wait_api` before using the API (starting the detector
        meanwhile saves another start-up's time).
        """
        from services.api.store.common import Actor
        from services.api.store.keys import create_key
        from services.api.store.migrate import upgrade
        from services.api.store.session import Store

        self.env.state_dir.mkdir(parents=True, exist_ok=True)
        store = Store(self.env.database_url)
        try:
            upgrade(store)
            with store.write() as session:
                _, new = create_key(session, "viewer", "bench", Actor("bench", "admin"))
        finally:
            store.dispose()
        api = self._start(Service("api", ["api", "serve"], self.env))
        return api, new.token

    def wait_api(self, timeout: float = 120) -> None:
        self.services["api"].wait_until(self._api_healthy, "answering /healthz", timeout)

    def _start(self, service: Service) -> Service:
        self.services[service.name] = service.start()
        return service

    def _api_healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.env.api_base}/healthz", timeout=2):
                return True
        except OSError:
            return False

    def wait_ready(self, name: str, timeout: float = 180) -> None:
        """The service answers on /metrics and its consumer group is stable with a member (assigned)."""
        service = self.services[name]
        group = {"detector": self.topics.detector_app_id, "ingest": f"{self.env.prefix}ingest"}[name]
        with closing(KafkaAdminClient(bootstrap_servers=self.env.bootstrap, client_id="amiwatch-bench-groups")) as admin:

            def ready() -> bool:
                if scrape(self.env.metrics_url(name)) is None:
                    return False
                described = admin.describe_groups([group]).get(group) or {}
                state = described.get("group_state", described.get("state"))
                return state == "Stable" and bool(described.get("members"))

            service.wait_until(ready, "in a stable consumer group", timeout)

    # -- reading -----------------------------------------------------------------------

    def sample(self) -> dict[str, float] | None:
        """One reading of every running service's counters; None if one does not answer now."""
        values: dict[str, float] = {}
        for name, service in self.services.items():
            if service.process is None or service.process.poll() is not None:
                continue
            text = scrape(self.env.metrics_url(name))
            if text is None:
                return None
            for key, metric in _COUNTERS[name].items():
                values[key] = total(text, metric)
        if "api" in self.services:
            values["alert_records"] = float(self.alert_records())
        return values

    def alert_records(self) -> int:
        if self._offsets is None:
            self._offsets = KafkaConsumer(bootstrap_servers=self.env.bootstrap, client_id="amiwatch-bench-offsets")
        partitions = [TopicPartition(self.topics.alerts, p) for p in range(self.env.partitions)]
        return sum(self._offsets.end_offsets(partitions).values())

    def peak_rss(self) -> dict[str, Any]:
        return {name: service.peak_rss for name, service in self.services.items()}

    def stop(self) -> None:
        """Stop in reverse start order (ingest first when it was started last)."""
        for service in reversed(list(self.services.values())):
            service.stop()
        if self._offsets is not None:
            self._offsets.close()
            self._offsets = None

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
