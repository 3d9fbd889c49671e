"""A one-line progress bar on stderr: share done, simulated time, rate and time left.

Redrawn at most a few times a second, because the generator calls it
once per interval and a terminal write per call would cost more than
the work it reports on.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """Call with ``(done, total)`` intervals; ``close()`` ends the line."""

    __slots__ = ("_stream", "_start", "_last", "_per_interval", "_width")

    def __init__(self, readings_per_interval: int, stream: TextIO | None = None, width: int = 30) -> None:
        self._stream = stream or sys.stderr
        self._start = time.perf_counter()
        self._last = 0.0
        self._per_interval = readings_per_interval
        self._width = width

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if done < total and now - self._last < 0.25:
            return
        self._last = now
        elapsed = max(now - self._start, 1e-9)
        frac = done / total if total else 1.0
        filled = int(frac * self._width)
        rate = done * self._per_interval / elapsed
        left = elapsed * (total - done) / done if done else 0.0
        bar = "#" * filled + "-" * (self._width - filled)
        self._stream.write(f"\r[{bar}] {frac:6.1%} {done}/{total} intervals  {rate:,.0f} readings/s  ETA {left:5.0f}s ")
        self._stream.flush()

    def close(self) -> None:
        self._stream.write("\n")
        self._stream.flush()
