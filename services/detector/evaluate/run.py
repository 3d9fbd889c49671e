"""One evaluation from start to end: generate the labelled scenario, run it, match, measure.

The scenario is generated in-process (``simulators.generate.Simulation``);
its labels are known before any reading exists. Offline (the default) the
simulator streams straight into :class:`~services.detector.offline.OfflineRunner`,
the same ingest and detector code the services run, so generation and
detection overlap and nothing is written to disk. ``via_kafka`` sends it
through the broker and the real services instead
(:mod:`services.detector.evaluate.kafka`).

``workers`` > 1 splits the areas among processes the way Kafka splits them
among partitions: this process generates the run once and sends each
archive and raw message to the worker its key (the area id) hashes to,
where a runner of its own judges it; the alert records are then put
together. Areas share no state but one: wrong_area's voltage rule reads the
other areas' daily voltage profiles, which the workers share through a
``multiprocessing`` manager's dict (the Faust app's global table). A day is
judged one day after it closed, and the workers, fed in step by this
process through small pipes, never drift apart by a day, so the alerts are
the same; only the wall time changes.

When false theft, swing or loss alerts fall on subjects only data faults
touched, their areas run once more without the faults
(:mod:`~services.detector.evaluate.control`) to tell which the faults caused.
"""

from __future__ import annotations

import multiprocessing
import time
import zlib
from collections import Counter
from collections.abc import Callable, MutableMapping
from multiprocessing.connection import Connection
from pathlib import Path

from services.detector.detectors.wrong_area import MappingVoltageDirectory
from services.detector.evaluate.control import control_run
from services.detector.evaluate.kafka import run_via_kafka
from services.detector.evaluate.matching import Run
from services.detector.evaluate.report import Evaluation, evaluate_run
from services.detector.offline import OfflineResult, OfflineRunner
from services.detector.thresholds import load_thresholds
from simulators.generate import Simulation
from simulators.scenario import Scenario

__all__ = ["evaluate", "run_facts", "shard_of"]

Progress = Callable[[int, int], None]


def run_facts(sim: Simulation) -> Run:
    """The run's interval, end and size, and each meter's share of its area's energy, as the matching rule needs them."""
    grid = sim.grid
    share = {}
    for fleet in sim.fleets:
        total = float(fleet.expected_kwh_day.sum())
        share.update(zip(map(str, fleet.meter_ids), (fleet.expected_kwh_day / total).tolist(), strict=True))
    return Run(
        interval_s=grid.interval_s,
        end=grid.ts_epoch(grid.total - 1),
        meters=sum(f.size for f in sim.fleets),
        days=float(grid.days),
        area_share=share,
    )


def shard_of(key: str, shards: int) -> int:
    """The worker of a message key (stable across processes, unlike ``hash``)."""
    return zlib.crc32(key.encode()) % shards


_BATCH = 64
"""Messages sent to a worker at a time: fewer, larger pipe writes."""


def _worker(conn: Connection, thresholds: Path | None, voltages: MutableMapping[bytes, bytes]) -> None:
    """A worker process: batches of (is_archive, key, value) until None, then its result."""
    runner = OfflineRunner(load_thresholds(thresholds), voltage_directory=MappingVoltageDirectory(voltages))
    while (batch := conn.recv()) is not None:
        for is_archive, key, value in batch:
            (runner.archive if is_archive else runner.raw)(key, value)
    conn.send(runner.finish())
    conn.close()


class _Fanout:
    """The simulator's sink when there are workers: each archive and raw message to the worker of its key."""

    wants_csv = False

    def __init__(self, conns: list[Connection]) -> None:
        self._conns = conns
        self._batches: list[list[tuple[bool, str, bytes]]] = [[] for _ in conns]

    def _add(self, is_archive: bool, key: str, value: bytes) -> None:
        k = shard_of(key, len(self._conns))
        batch = self._batches[k]
        batch.append((is_archive, key, value))
        if len(batch) >= _BATCH:
            self._conns[k].send(batch)
            self._batches[k] = []

    def archive(self, key: str, value: bytes) -> None:
        self._add(True, key, value)

    def raw(self, key: str, value: bytes) -> None:
        self._add(False, key, value)

    def label(self, key: str, value: bytes) -> None:
        """Labels are read from the simulation itself."""

    def csv(self, text: str) -> None:
        """No CSV export here."""

    def barrier(self) -> None:
        """Ordering per key is kept by the pipes."""

    def finish(self) -> list[OfflineResult]:
        """Send what is left, tell every worker the input ended, collect the results."""
        for conn, batch in zip(self._conns, self._batches, strict=True):
            if batch:
                conn.send(batch)
            conn.send(None)
        return [conn.recv() for conn in self._conns]


def _offline(sim: Simulation, thresholds: Path | None, workers: int, progress: Progress | None) -> list[OfflineResult]:
    """Run ``sim`` offline in this process (one worker) or fanned out to ``workers`` processes."""
    if workers <= 1:
        runner = OfflineRunner(load_thresholds(thresholds))
        sim.run(runner, progress=progress)
        return [runner.finish()]
    context = multiprocessing.get_context("fork")
    with context.Manager() as manager:
        voltages = manager.dict()  # wrong_area: every area's daily voltage profile, for all workers
        pipes = [context.Pipe() for _ in range(workers)]
        processes = [
            context.Process(target=_worker, args=(child, thresholds, voltages), daemon=True) for _, child in pipes
        ]
        for process in processes:
            process.start()
        try:
            fanout = _Fanout([parent for parent, _ in pipes])
            sim.run(fanout, progress=progress)
            return fanout.finish()
        finally:
            for process in processes:
                process.join(timeout=10)
                if process.is_alive():
                    process.kill()


def evaluate(
    scenario: Scenario,
    *,
    thresholds: Path | None = None,
    via_kafka: bool = False,
    workers: int = 1,
    progress: Progress | None = None,
) -> Evaluation:
    """Evaluate the detector on ``scenario``.

    ``thresholds``: a file merged over the defaults (as ``AMIWATCH_THRESHOLDS``);
    ``workers``: offline processes (see the module docstring); ``progress`` is
    called with (intervals generated, total), as the simulator's progress bar is.
    """
    started = time.perf_counter()
    sim = Simulation(scenario)
    if via_kafka:
        result = run_via_kafka(sim, thresholds, progress=progress)
        records, rejected, timings = result.records, result.rejected, dict(result.timings_s)
        source = "kafka"
    else:
        results = _offline(sim, thresholds, workers, progress)
        reasons: Counter[str] = Counter()
        for r in results:
            reasons.update(r.rejected)
        records, rejected, source = [record for r in results for record in r.records], dict(sorted(reasons.items())), "offline"
        timings = {"ingest+detect (busiest worker)": max(r.seconds for r in results), "simulate and run": time.perf_counter() - started}
    matched = time.perf_counter()
    ev = evaluate_run(source, sim.header(), run_facts(sim), sim.labels, records, rejected, timings)
    ev.timings_s["match"] = time.perf_counter() - matched
    if ev.faults.suspects:
        controlled = time.perf_counter()
        control_run(ev.faults, scenario, thresholds)
        ev.timings_s["fault control run"] = time.perf_counter() - controlled
    ev.timings_s["total"] = time.perf_counter() - started
    return ev
