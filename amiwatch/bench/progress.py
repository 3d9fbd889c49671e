"""A progress line on stderr: ``label  counter done/total …  elapsed``.

On a terminal the line is rewritten in place; otherwise (a log, CI) one line
is written every ``every`` seconds, so a long run still shows it is alive.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress", "note"]


def note(text: str, stream: TextIO | None = None) -> None:
    """A line of its own (a phase starting, a result)."""
    stream = stream or sys.stderr
    print(text, file=stream, flush=True)


class Progress:
    """Shows ``shown`` counters of each sample against their ``totals`` (a counter without a total as is)."""

    def __init__(self, label: str, totals: dict[str, float | None], *, enabled: bool = True,
                 stream: TextIO | None = None, every: float = 5.0) -> None:
        self.label = label
        self.totals = totals
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every = every
        self.started = time.monotonic()
        self._last = 0.0
        self._width = 0

    def update(self, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not self.tty and now - self._last < self.every:
            return
        self._last = now
        parts = []
        for name, total in self.totals.items():
            value = values.get(name, 0)
            parts.append(f"{name} {value:,.0f}" + (f"/{total:,.0f}" if total else ""))
        line = f"  {self.label}: {'  '.join(parts)}  {now - self.started:6.1f} s"
        if self.tty:
            self.stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
