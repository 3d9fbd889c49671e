"""The ``amiwatch`` entry point: each command's module is known, and a command imports only its own."""

from __future__ import annotations

import argparse
import doctest
import importlib
import subprocess
import sys

import pytest

from amiwatch import cli


def test_doctests() -> None:
    result = doctest.testmod(cli)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("module", list(cli.COMMAND_MODULES))
def test_each_module_adds_the_commands_it_is_listed_with(module: str) -> None:
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers(dest="command")
    importlib.import_module(module).register(subparsers)
    assert tuple(subparsers.choices) == cli.COMMAND_MODULES[module]


def test_a_command_imports_only_its_own_module() -> None:
    probe = (
        "import sys; from amiwatch import cli; cli.build_parser(['ingest', '--help'])\n"
        "print(sorted(m for m in ('services.api.app', 'services.detector.evaluate.cli', 'scipy', 'fastapi')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    listed = cli.build_parser().format_help()  # --help still lists every command
    assert all(command in listed for commands in cli.COMMAND_MODULES.values() for command in commands)
