"""``amiwatch detect``'s command line, without a broker: its flags, and the optional subcommands it adds."""

from __future__ import annotations

import argparse
import importlib
import types

import pytest

from services.detector import cli


def _parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    parser = argparse.ArgumentParser(prog="amiwatch")
    return parser, parser.add_subparsers(dest="command")


def test_detect_flags() -> None:
    parser, sub = _parser()
    cli.register(sub)
    args = parser.parse_args(
        ["detect", "--exit-when-idle", "5", "--worker-name", "w1", "--web-port", "6070",
         "--metrics-port", "0", "--store", "rocksdb://"]
    )
    assert (args.exit_when_idle, args.worker_name, args.web_port, args.metrics_port, args.store) == (
        5.0, "w1", 6070, 0, "rocksdb://"
    )
    assert args.func is cli.detect
    defaults = parser.parse_args(["detect"])
    assert defaults.exit_when_idle is None and defaults.metrics_port is None and defaults.store is None


def test_optional_subcommands_are_added_when_built_and_skipped_when_absent(monkeypatch) -> None:
    real = importlib.import_module
    registered: list[str] = []

    def fake(name: str):
        if name == "services.detector.evaluate.cli":
            module = types.ModuleType(name)
            module.register = lambda sub: registered.append(name)  # type: ignore[attr-defined]
            return module
        if name == "services.detector.backtest.cli":
            raise ModuleNotFoundError(f"No module named {name!r}", name="services.detector.backtest")
        return real(name)

    monkeypatch.setattr(cli.importlib, "import_module", fake)
    cli.register(_parser()[1])
    assert registered == ["services.detector.evaluate.cli"]


def test_a_broken_optional_subcommand_is_not_hidden(monkeypatch) -> None:
    """A module that exists but cannot import its own dependency must fail loudly."""
    real = importlib.import_module

    def fake(name: str):
        if name == "services.detector.backtest.cli":
            raise ModuleNotFoundError("No module named 'scipy'", name="scipy")
        return real(name)

    monkeypatch.setattr(cli.importlib, "import_module", fake)
    with pytest.raises(ModuleNotFoundError, match="scipy"):
        cli.register(_parser()[1])
