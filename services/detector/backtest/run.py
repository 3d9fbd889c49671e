"""One backtest: a readings file (plus optional archive, area meters, events) → the live pipeline → alerts and scores.

Steps: read the area meters and the archive (or note that it will be
inferred); survey the readings (order, interval, meters); build the archive
timeline; replay the readings as raw messages through
:class:`~services.detector.offline.OfflineRunner` (in time order: a file
that is not is sorted in memory); write the score table as days close.
Everything the command had to assume is returned in ``notes`` so it can
say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import IO

from services.detector.backtest.archive import (
    ArchiveTimeline,
    area_meter_ids,
    infer_archive,
    load_archive,
    load_area_meters,
    meter_areas,
)
from services.detector.backtest.events import MeterEvents
from services.detector.backtest.replay import Replay
from services.detector.backtest.scores import ScoreTable
from services.detector.backtest.survey import survey
from services.detector.backtest.table import Columns, read_rows
from services.detector.eventtime import parse_ts
from services.detector.offline import OfflineResult, OfflineRunner
from services.detector.thresholds import load_thresholds

__all__ = ["INTERVALS", "Backtest", "BacktestResult", "backtest"]

INTERVALS = (15, 30, 60, 1440)
"""Interval lengths (minutes) the contract knows."""


@dataclass(frozen=True, slots=True)
class Backtest:
    """What to backtest (the command's flags)."""

    readings: Path
    columns: Columns = field(default_factory=lambda: Columns.of({}))
    archive: Path | None = None
    area_meters: Path | None = None
    events: Path | None = None
    granularity: int | None = None
    thresholds: Path | None = None


@dataclass(slots=True)
class BacktestResult:
    """The run's output and what it assumed."""

    result: OfflineResult
    rows: int
    messages: int
    interval_minutes: int
    areas: int
    meters: int
    score_rows: int = 0
    events: int = 0
    events_dropped: int = 0
    notes: list[str] = field(default_factory=list)


def backtest(job: Backtest, scores: IO[str] | None = None) -> BacktestResult:
    """Run ``job``; write the per-meter, per-day score table to ``scores`` when given."""
    notes: list[str] = []
    facts = load_area_meters(job.area_meters) if job.area_meters else {}
    records = load_archive(job.archive) if job.archive else []
    seen = survey(read_rows(job.readings, job.columns), meter_areas(records), area_meter_ids(records, facts))
    if not seen.rows:
        raise ValueError(f"{job.readings}: no readings")
    if not records:
        records = infer_archive(seen.meters)
        notes.append(
            f"no --archive: inferred one for {sum(map(len, seen.meters.values()))} meters in {len(seen.meters)} area(s) "
            "(multiplier 1, residential, active, ratings unknown: rules that need ratings stay silent)"
        )
    timeline = ArchiveTimeline.of(records, facts, start=str(seen.first_ts))
    if not area_meter_ids(timeline.records(), {}):
        notes.append("no area meters (archive area_meter or --area-meters): no loss balance, no area alerts")
    interval = job.granularity or seen.interval_minutes()
    if interval not in INTERVALS:
        raise ValueError(f"{job.readings}: interval {interval} min is not one of {INTERVALS}; give --granularity")
    if job.granularity is None:
        notes.append(f"interval {interval} min (smallest step between timestamps; --granularity to set it)")
    rows = read_rows(job.readings, job.columns)
    if not seen.in_order:
        notes.append("readings not in time order: sorted in memory")
        stamp = lru_cache(maxsize=None)(parse_ts)
        rows = iter(sorted(rows, key=lambda r: stamp(r.ts)))
    events = MeterEvents.load(job.events)
    observer = ScoreTable(scores) if scores is not None else None
    runner = OfflineRunner(load_thresholds(job.thresholds), observer=observer)
    replay = Replay(runner, timeline, events, interval)
    replay.feed(rows)
    result = runner.finish()
    return BacktestResult(
        result=result,
        rows=seen.rows,
        messages=replay.messages,
        interval_minutes=interval,
        areas=len(timeline.initial),
        meters=sum(len(r.get("meters", ())) for r in timeline.initial),
        score_rows=observer.rows if observer is not None else 0,
        events=events.total,
        events_dropped=events.dropped(),
        notes=notes,
    )
