"""Watch running services until their work is done, and turn what was seen into a sustained rate.

A phase gives :func:`watch` a ``sample`` function (counters scraped from
the services' ``/metrics``, or None while one does not answer) and a
``done`` test over a sample. Every ``interval`` seconds it samples, reads
the services' peak RSS (and fails fast if one died) and updates the
progress line, until ``done`` holds.

:func:`sustained_rate` is a counter's final value divided by the time from
the last sample before it moved to the first sample at which the phase was
done. Start-up (interpreter, imports, group join, table recovery) lies
before that and is not counted; the error is one sampling interval at
each end.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from amiwatch.bench.procs import BenchError, Service
from amiwatch.bench.progress import Progress

__all__ = ["Sample", "watch", "sustained_rate"]

Sample = dict[str, float]


@dataclass(frozen=True, slots=True)
class Seen:
    t: float
    values: Sample


def watch(
    sample: Callable[[], Sample | None],
    done: Callable[[Sample], bool],
    services: Sequence[Service],
    progress: Progress,
    *,
    timeout: float,
    interval: float = 0.25,
) -> list[Seen]:
    """Sample until ``done``; return every sample with its time (``time.monotonic``)."""
    seen: list[Seen] = []
    deadline = time.monotonic() + timeout
    while True:
        for service in services:
            service.sample()
        values = sample()
        now = time.monotonic()
        if values is not None:
            seen.append(Seen(now, values))
            progress.update(values)
            if done(values):
                return seen
        if now > deadline:
            tails = "\n".join(f"--- {s.name} ({s.log})\n{s.log_tail()}" for s in services)
            raise BenchError(f"{progress.label}: not done after {timeout:.0f} s (last sample {values})\n{tails}")
        time.sleep(interval)


def sustained_rate(seen: list[Seen], counter: str, scale: float = 1.0) -> dict[str, Any]:
    """``counter``'s final value (× ``scale``) per second, from its start to the last (done) sample.

    The start is the last sample at which the counter was still 0: the
    services were up and about to work, so start-up is excluded and the
    error is at most one sampling interval. If the counter had already moved
    at the first sample (the service began before its ``/metrics`` answered),
    the rate is what it counted from that sample on. The counter need not be the
    last to finish: the pipeline counts ingest's readings but is done only
    when the alerts are in the store.
    """
    start = next((i for i, s in enumerate(seen) if s.values.get(counter, 0) > 0), None)
    if start is None:
        raise BenchError(f"{counter}: never moved, no rate")
    last = seen[-1]
    if start > 0:
        first, counted = seen[start - 1], last.values[counter]
    elif len(seen) > 1:
        # The service was already working when its /metrics first answered: count from that sample on.
        first, counted = seen[0], last.values[counter] - seen[0].values[counter]
    else:
        raise BenchError(f"{counter}: done at the first sample, no rate (a larger fleet gives the watch time to sample)")
    amount = counted * scale
    seconds = last.t - first.t
    return {"per_s": amount / seconds, "seconds": seconds, "amount": amount}
