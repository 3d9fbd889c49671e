"""``amiwatch api``: serve the HTTP API (with the sinks and webhooks), migrate, create a key, run the sinks alone.

    amiwatch api serve [--host H] [--port P] [--no-sink]
    amiwatch api migrate
    amiwatch api create-key --role viewer|operator|inspector|admin --name NAME
    amiwatch api sink [--exit-when-idle S] [--max-batch N]

Settings come from the environment (``AMIWATCH_DATABASE_URL``,
``AMIWATCH_API_HOST``/``_PORT``, ``KAFKA_BOOTSTRAP_SERVERS``, … see
``services/api/core/config.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

__all__ = ["register"]


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from services.api.app import create_app
    from services.api.core.config import load_config

    _logging()
    config = load_config()
    if args.no_sink:
        config = config.with_(sink_enabled=False)
    host = args.host or config.host
    port = args.port or config.port
    uvicorn.run(create_app(config), host=host, port=port, log_level="info", access_log=False, timeout_graceful_shutdown=20)
    return 0


def migrate(args: argparse.Namespace) -> int:
    from services.api.core.config import load_config
    from services.api.store.migrate import upgrade
    from services.api.store.session import Store

    store = Store(load_config().database_url)
    try:
        print(f"database at revision {upgrade(store, args.revision)}")
    finally:
        store.dispose()
    return 0


def create_key(args: argparse.Namespace) -> int:
    from services.api.core.config import load_config
    from services.api.store.common import Actor
    from services.api.store.keys import create_key as create
    from services.api.store.migrate import upgrade
    from services.api.store.session import Store

    store = Store(load_config().database_url)
    try:
        upgrade(store)
        with store.write() as session:
            key, new = create(session, args.role, args.name, Actor("cli", "admin"))
    finally:
        store.dispose()
    print(new.token)
    print(f"key {key.id}: role {key.role}, name {key.name}. The key is shown only now; store it.", file=sys.stderr)
    return 0


def sink(args: argparse.Namespace) -> int:
    from services.api.core.config import load_config
    from services.api.metrics import ApiMetrics
    from services.api.sink import AlertSink, ContextSink
    from services.api.store.migrate import upgrade
    from services.api.store.session import Store

    _logging()
    config = load_config()
    store = Store(config.database_url)
    upgrade(store)
    metrics = ApiMetrics(store)
    kinds = [AlertSink] if args.alerts_only else [AlertSink, ContextSink]
    sinks = [k(store, config, metrics, exit_when_idle=args.exit_when_idle, max_batch=args.max_batch or config.sink_max_batch) for k in kinds]

    async def main() -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: [s.stop() for s in sinks])
        codes = await asyncio.gather(*(s.run() for s in sinks))
        return max(codes)

    try:
        return asyncio.run(main())
    finally:
        store.dispose()


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``amiwatch api``."""
    parser = subparsers.add_parser("api", help="the HTTP API: alerts, triage, inspections, reports", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="api_command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="serve /api/v1 (and run the alert sink and webhook outbox in the background)")
    p.add_argument("--host", help="listen address (default AMIWATCH_API_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default AMIWATCH_API_PORT or 8000)")
    p.add_argument("--no-sink", action="store_true", help="do not consume Kafka (another process runs `amiwatch api sink`)")
    p.set_defaults(func=serve)

    p = sub.add_parser("migrate", help="bring the database schema up to date (serve does this too)")
    p.add_argument("--revision", default="head", help="target revision (default head)")
    p.set_defaults(func=migrate)

    p = sub.add_parser("create-key", help="create an API key and print it (once)")
    p.add_argument("--role", required=True, choices=("viewer", "operator", "inspector", "admin"))
    p.add_argument("--name", required=True, help="who holds it; for an inspector, the inspector id")
    p.set_defaults(func=create_key)

    p = sub.add_parser("sink", help="consume ami.alerts (and archives and frames) into the store, without HTTP")
    p.add_argument("--exit-when-idle", type=float, metavar="SECONDS", help="exit 0 once every partition has been at its end this long")
    p.add_argument("--max-batch", type=int, metavar="N", help="records per transaction (default AMIWATCH_API_SINK_MAX_BATCH or 500)")
    p.add_argument("--alerts-only", action="store_true", help="consume only ami.alerts")
    p.set_defaults(func=sink)
