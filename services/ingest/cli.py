"""Run ingest: raw readings in, area frames and dead letters out, exactly once (``amiwatch ingest``).

Reads settings from the environment (:func:`amiwatch.settings.load_settings`);
the flags override what a single run needs.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import socket

from aiokafka.errors import ProducerFenced

from amiwatch.settings import load_settings
from services.ingest import metrics
from services.ingest.service import IngestConfig, IngestService

__all__ = ["register", "ingest"]

log = logging.getLogger(__name__)


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(IngestConfig)}
"""The worker's own defaults, which the flags show and keep."""


def ingest(args: argparse.Namespace) -> int:
    """Run one ingest worker until stopped, or until idle with ``--exit-when-idle``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    settings = load_settings()
    config = IngestConfig(
        bootstrap_servers=settings.bootstrap_servers,
        topics=settings.topics,
        group=args.group or f"{settings.topics.prefix}ingest",
        worker=args.worker or socket.gethostname(),
        grace_intervals=args.grace_intervals,
        exit_when_idle=args.exit_when_idle,
        idle_flush_s=args.idle_flush or None,
        max_batch_messages=args.max_batch,
        max_batch_seconds=args.max_batch_seconds,
    )
    port = settings.ingest_metrics_port if args.metrics_port is None else args.metrics_port
    metrics.serve(port)
    try:
        return asyncio.run(IngestService(config).run())
    except ProducerFenced:
        log.error("another ingest process took over worker %r of group %r; stopping", config.worker, config.group)
        return 3


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``amiwatch ingest``."""
    parser = subparsers.add_parser(
        "ingest",
        help="validate raw readings and assemble area frames (exactly once)",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument(
        "--exit-when-idle",
        type=float,
        metavar="SECONDS",
        help="flush open frames (closed_by idle) and exit 0 once every partition has been at its end this long",
    )
    parser.add_argument(
        "--grace-intervals",
        type=int,
        default=_DEFAULTS["grace_intervals"],
        metavar="N",
        help="close a frame when its area's newest reading is more than N intervals later (default %(default)s)",
    )
    parser.add_argument("--group", metavar="ID", help="consumer group (default: <topic prefix>ingest)")
    parser.add_argument(
        "--worker",
        metavar="NAME",
        help="stable name of this worker in the group; its transactional id derives from it (default: host name)",
    )
    parser.add_argument(
        "--idle-flush",
        type=float,
        default=300,
        metavar="SECONDS",
        help="close open frames (idle) once every partition has been at its end this long (default 300; 0: never)",
    )
    parser.add_argument(
        "--max-batch",
        type=int,
        default=_DEFAULTS["max_batch_messages"],
        metavar="N",
        help="raw records per transaction at most (default %(default)s)",
    )
    parser.add_argument(
        "--max-batch-seconds",
        type=float,
        default=_DEFAULTS["max_batch_seconds"],
        metavar="SECONDS",
        help="a batch takes what arrives for at most this long after its first record, then commits (default %(default)s)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        metavar="N",
        help="serve Prometheus /metrics on this port, 0 = don't (default: AMIWATCH_INGEST_METRICS_PORT, 9101)",
    )
    parser.set_defaults(func=ingest)
