"""The ``amiwatch`` command: one entry point whose subcommands front every service and tool.

Each subcommand lives with the code it runs; this module only lists them.
A module named here exposes ``register(subparsers)``, which adds its
parser(s) and sets ``func`` (called with the parsed arguments, returning
an exit code).

A service's start-up is part of its recovery time after a crash, so a
named subcommand imports only its own module: ``amiwatch ingest`` does not
load the API's web stack or the evaluator's scipy (about a second on the
two-core machine). ``--help`` and unknown commands load every module.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main", "build_parser"]

# Modules that add subcommands, in the order ``amiwatch --help`` lists them, with the commands each adds.
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "amiwatch.run": ("up",),
    "amiwatch.kafka.local_broker": ("kafka",),
    "amiwatch.kafka.topics": ("topics",),
    "simulators.cli": ("simulate",),
    "services.ingest.cli": ("ingest",),
    "services.detector.cli": ("detect", "evaluate", "backtest"),
    "services.api.cli": ("api",),
    "amiwatch.bench.cli": ("bench",),
}


def modules_for(argv: list[str]) -> list[str]:
    """The modules to import for ``argv``: the named command's own, or all of them (help, unknown command).

    >>> modules_for(["ingest", "--exit-when-idle", "5"])
    ['services.ingest.cli']
    >>> len(modules_for(["--help"])) == len(COMMAND_MODULES) == len(modules_for(["nonsense"]))
    True
    """
    command = next((a for a in argv if not a.startswith("-")), None)
    named = [module for module, commands in COMMAND_MODULES.items() if command in commands]
    return named or list(COMMAND_MODULES)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser for ``argv`` (default: every command)."""
    parser = argparse.ArgumentParser(prog="amiwatch", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in modules_for(argv) if argv is not None else COMMAND_MODULES:
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
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
