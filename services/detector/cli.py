"""``amiwatch detect``: one detector worker (the Faust app of :mod:`services.detector.app`), in this process.

Also adds ``amiwatch evaluate`` and ``amiwatch backtest`` when their modules
(``services.detector.evaluate.cli``, ``services.detector.backtest.cli``) exist.

Flags override the environment (``AMIWATCH_DETECTOR_*``, see
:class:`services.detector.app.DetectorConfig`): they are written to it
before the app module is imported, so the app reads one source. Several
workers of one group may run side by side; each needs its own ``--web-port``
(Faust's web server; the default worker name and data dir derive from it)
and ``--metrics-port`` (or 0).

``--exit-when-idle S`` makes a batch run end by itself: once the worker has
its assignment and its tables are recovered, it stops when no frame has
arrived for S seconds, the same way as on SIGTERM (agents finish the frame
in hand, the producer is flushed, offsets are committed, the group is left).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import time
from typing import Any

from mode import Service

from amiwatch.settings import load_settings

__all__ = ["register", "detect", "ExitWhenIdle"]

# Subcommands built by others, added when present.
_OPTIONAL_COMMANDS = ("services.detector.evaluate.cli", "services.detector.backtest.cli")

log = logging.getLogger(__name__)


class ExitWhenIdle(Service):
    """Stops the worker (as SIGTERM would) after ``idle_s`` without a frame, counted from readiness."""

    def __init__(self, app: Any, idle_s: float, **kwargs: Any) -> None:
        self.app = app
        self.idle_s = idle_s
        super().__init__(**kwargs)

    def _ready(self) -> bool:
        """Assigned, not rebalancing, tables recovered: frames would flow now if there were any."""
        app = self.app
        try:
            assigned = bool(app.consumer.assignment())
        except Exception:  # consumer not started yet
            return False
        return assigned and not app.rebalancing and app.tables.recovery.completed.is_set()

    @Service.task
    async def _watch(self) -> None:
        from services.detector import metrics

        ready_since: float | None = None
        while not self.should_stop:
            await self.sleep(0.25)
            if not self._ready():
                ready_since = None
                continue
            ready_since = ready_since or time.monotonic()
            quiet = time.monotonic() - max(ready_since, metrics.last_frame_at())
            if quiet >= self.idle_s:
                log.info("no frame for %.1f s: stopping", quiet)
                os.kill(os.getpid(), signal.SIGTERM)  # the worker's own graceful path
                return


def detect(args: argparse.Namespace) -> int:
    overrides = {"WEB_PORT": args.web_port, "STORE": args.store, "WORKER": args.worker_name}
    for name, value in overrides.items():
        if value is not None:
            os.environ[f"AMIWATCH_DETECTOR_{name}"] = str(value)

    import faust

    from services.detector import metrics
    from services.detector.app import CONFIG, app

    metrics_port = load_settings().detector_metrics_port if args.metrics_port is None else args.metrics_port
    metrics.serve(metrics_port)
    CONFIG.datadir.parent.mkdir(parents=True, exist_ok=True)  # Faust makes only the last level
    app.finalize()
    app.worker_init()
    app.worker_init_post_autodiscover()
    services = [ExitWhenIdle(app, args.exit_when_idle)] if args.exit_when_idle else []
    worker = faust.Worker(app, *services, loglevel=args.loglevel, quiet=True)
    # No terminal spinner for a service: at --loglevel warning and above Faust's would set the root logger
    # to DEBUG, and aiokafka's and Faust's debug calls then build a record per message (3 % of the
    # detector's samples in the bench) for the handler to drop.
    worker.spinner = None
    print(
        f"detector {CONFIG.worker}: group {CONFIG.app_id}, store {CONFIG.store}, standbys {CONFIG.standbys}, "
        f"web :{CONFIG.web_port}, metrics :{metrics_port or 'off'}",
        file=sys.stderr, flush=True,
    )
    worker.execute_from_commandline()  # returns only by SystemExit
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``amiwatch detect`` (and ``evaluate``/``backtest`` where built)."""
    parser = subparsers.add_parser("detect", help="run a detector worker: frames in, alerts out (Faust)")
    parser.add_argument(
        "--exit-when-idle", type=float, metavar="SECONDS",
        help="stop cleanly (committing) once no frame arrived for this long after the assignment",
    )
    parser.add_argument("--worker-name", help="this worker's name (default: detector-<web port>)")
    parser.add_argument("--web-port", type=int, help="Faust web server port (default: AMIWATCH_DETECTOR_WEB_PORT, 6066)")
    parser.add_argument(
        "--metrics-port", type=int,
        help="Prometheus /metrics port (default: AMIWATCH_DETECTOR_METRICS_PORT, 9102; 0 disables)",
    )
    parser.add_argument("--store", help="table store: memory:// (default) or rocksdb:// (AMIWATCH_DETECTOR_STORE)")
    parser.add_argument("--loglevel", default="info", help="worker log level (default: info)")
    parser.set_defaults(func=detect)

    for name in _OPTIONAL_COMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # Only the module itself (or its package) being absent means "not built yet".
            if exc.name and (name == exc.name or name.startswith(exc.name + ".")) and exc.name.startswith("services.detector."):
                continue
            raise
        module.register(subparsers)
