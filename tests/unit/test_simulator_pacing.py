"""``--speed``: slots go out one interval / speed apart, and time lost building a day is never made up in a burst.

A fake clock stands in for ``time``: sleeping advances it, and building
each day costs it 10 slots, as a large fleet's physics would.
"""

from __future__ import annotations

import itertools

import pytest

import simulators.generate as generate
from simulators.generate import Simulation
from simulators.scenario import scenario

SPEED = 3600.0  # hourly intervals: one slot per second of the fake clock


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds


class _Sink:
    wants_csv = False

    def __init__(self, clock: _Clock) -> None:
        self.clock = clock
        self.raw_at: list[float] = []

    def archive(self, key: str, value: bytes) -> None: ...
    def label(self, key: str, value: bytes) -> None: ...
    def csv(self, text: str) -> None: ...
    def events(self, text: str) -> None: ...
    def barrier(self) -> None: ...

    def raw(self, key: str, value: bytes) -> None:
        self.raw_at.append(self.clock.now)


def test_paced_slots_are_one_interval_apart_even_after_a_slow_day(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(generate, "time", clock)
    sim = Simulation(scenario("small", days=3, interval_minutes=60, seed=2))
    build_day = sim._physics_day

    def slow_day(*args, **kwargs):  # type: ignore[no-untyped-def]
        clock.now += 10.0
        return build_day(*args, **kwargs)

    monkeypatch.setattr(sim, "_physics_day", slow_day)
    sink = _Sink(clock)
    sim.run(sink, speed=SPEED)
    slots = [t for t, _ in itertools.groupby(sink.raw_at)]  # the clock stands still while a slot is sent
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert len(slots) >= 3 * 24 - 2  # a slot holding only late uploads may coincide; nearly every hour has one
    assert min(gaps) >= 1.0 - 1e-9, "two slots went out closer than one interval / speed"
    assert sum(gap >= 10.0 for gap in gaps) == 2  # the two later days' builds: waited out, not caught up
