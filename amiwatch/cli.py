"""The ``amiwatch`` command: one entry point whose subcommands front every service and tool.

Each subcommand lives with the code it runs; this module only lists them.
A module named here exposes ``register(subparsers)``, which adds its
parser(s) and sets ``func`` (called with the parsed arguments, returning
an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main", "build_parser"]

# Modules that add subcommands, in the order ``amiwatch --help`` lists them.
COMMAND_MODULES = (
    "amiwatch.run",  # up
    "amiwatch.kafka.local_broker",  # kafka start|stop|status
    "amiwatch.kafka.topics",  # topics create|list
    "simulators.cli",  # simulate
    "services.ingest.cli",  # ingest
    "services.detector.cli",  # detect, evaluate, backtest
    "services.api.cli",  # api
    "amiwatch.bench.cli",  # bench
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="amiwatch", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # A service not built yet is simply absent from the menu.
            if exc.name and name.startswith(exc.name):
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
