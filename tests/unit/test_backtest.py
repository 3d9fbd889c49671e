"""``amiwatch backtest``: historical files through the live pipeline give the stream's alerts.

The stream here is the offline runner fed by the simulator (what ``amiwatch
evaluate`` runs, the services' own ingest and detector code); the export is
what ``amiwatch simulate --out-dir`` writes next to it (``readings.csv`` with
every column ingest normalises, ``events.csv``, ``archive.jsonl``).
Delivery-timing faults (late and out-of-order uploads) are switched off in
this scenario: a file in time order cannot say when a reading arrived, so
their correction frames are the one thing an export cannot reproduce. Every
other fault stays on.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from amiwatch.cli import main
from services.detector.backtest.output import write_alerts
from services.detector.backtest.run import Backtest, backtest
from services.detector.backtest.scores import COLUMNS as SCORE_COLUMNS
from services.detector.backtest.survey import DEFAULT_AREA
from services.detector.backtest.table import Columns, iso_ts, read_rows
from services.detector.offline import OfflineResult, OfflineRunner, fold_alerts
from services.detector.thresholds import load_thresholds
from services.ingest.archive_view import ArchiveView
from services.ingest.frames import FrameAssembler
from services.ingest.normalise import COLUMNS, Reading, format_time
from services.ingest.partition import PartitionProcessor
from simulators.generate import Simulation
from simulators.scenario import FaultRates, scenario
from simulators.sinks import FileSink, MultiSink

@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, OfflineResult]:
    """A small scenario streamed through the offline runner and exported to files at once."""
    out = tmp_path_factory.mktemp("export")
    sc = scenario("demo", areas=2, meters_per_area=15, days=8, warmup_days=5, seed=3,
                  faults=FaultRates(late_upload=0, out_of_order=0))  # fmt: skip
    files, runner = FileSink(out), OfflineRunner(load_thresholds())
    Simulation(sc).run(MultiSink([files, runner]))
    files.close()
    return out, runner.finish()


class _Record:
    def __init__(self, offset: int, value: bytes) -> None:
        self.offset, self.value, self.key = offset, value, None
        self.topic, self.partition, self.timestamp, self.headers = "raw", 0, None, ()


class _Recording(FrameAssembler):
    """A frame assembler that also keeps every reading ingest accepted (normalised, area meter included)."""

    __slots__ = ("accepted",)

    def __init__(self, archive: ArchiveView) -> None:
        super().__init__(archive)
        self.accepted: list[Reading] = []

    def add(self, readings: Iterable[Reading], offset: int) -> list[dict[str, Any]]:
        readings = list(readings)
        self.accepted += readings
        return super().add(readings, offset)


def _ingested(out: Path) -> tuple[list[Reading], list[dict[str, Any]]]:
    """What ingest makes of the run's raw messages: the readings it accepted, in delivery order, and its frames."""
    view = ArchiveView()
    for line in (out / "archive.jsonl").read_bytes().splitlines():
        view.apply(None, line)
    ingest = PartitionProcessor(0, view)
    ingest.assembler = recording = _Recording(view)
    frames: list[dict[str, Any]] = []
    for offset, line in enumerate((out / "raw.jsonl").read_bytes().splitlines()):
        frames += ingest.process(_Record(offset, line)).frames
    frames += ingest.flush()
    return recording.accepted, frames


def _cell(text: str) -> float | None:
    return None if text == "" else float(text)


def _canonical(records: list[dict[str, Any]]) -> list[bytes]:
    return sorted(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in records)


def test_the_csv_export_holds_exactly_what_ingest_makes_of_the_raw_messages(run: tuple[Path, OfflineResult]) -> None:
    """Every accepted reading once (identical re-sends are dropped), a conflicting re-send as a second row, same values."""
    out, _ = run
    with (out / "readings.csv").open(newline="") as fh:
        header, *cells = list(csv.reader(fh))
    assert header == ["meter_id", "area_id", "ts", *COLUMNS]
    rows = [(c[0], c[1], c[2], tuple(map(_cell, c[3:]))) for c in cells]
    accepted, frames = _ingested(out)
    expected = list(dict.fromkeys((r.meter_id, r.area_id, format_time(r.ts), r.values) for r in accepted))
    assert Counter(rows) == Counter(expected)
    assert [r[2] for r in rows] == sorted(r[2] for r in rows), "in time order"

    # The first row of a meter and ts is the value ingest kept; the run covers what makes the columns differ.
    first: dict[tuple[str, str], tuple[float | None, ...]] = {}
    for meter, _, ts, values in rows:
        first.setdefault((meter, ts), values)
    for f in frames:
        if f["revision"] == 0:
            for k, meter in enumerate(f["meters"]["meter_id"]):
                assert first[(meter, f["ts"])] == tuple(f["meters"][c][k] for c in COLUMNS)
    column = {c: [r[3][i] for r in rows] for i, c in enumerate(COLUMNS)}
    assert len(rows) - len(first) >= 1, "no conflicting re-send in the run"
    assert b'"unit":"Wh"' in (out / "raw.jsonl").read_bytes()
    assert None in column["voltage_b_v"] and any(v is not None for v in column["voltage_b_v"])
    assert any(v is not None for v in column["register_rev_kwh"])
    assert any(v not in (None, 0.0) for v in column["clock_offset_s"])

    with (out / "events.csv").open(newline="") as fh:
        header, *events = [tuple(row) for row in csv.reader(fh)]
    assert header == ("meter_id", "at", "code", "ts")
    assert events and len(set(events)) == len(events)
    assert set(events) == {(e["meter_id"], e["at"], e["code"], f["ts"]) for f in frames for e in f["events"]}


def test_the_simulators_export_gives_exactly_the_streams_alert_records(run: tuple[Path, OfflineResult]) -> None:
    out, stream = run
    done = backtest(Backtest(out / "readings.csv", archive=out / "archive.jsonl", events=out / "events.csv"))
    assert done.result.rejected == {}
    assert done.events and not done.events_dropped
    assert len(stream.records) > 20 and len({r["type"] for r in stream.records}) >= 10
    assert _canonical(done.result.records) == _canonical(stream.records)


def _write(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _household_rows(days: int = 2) -> list[list[Any]]:
    """Three meters without an area, 15-minute data; X3's register jumps back 5 kWh on the second day."""
    rows = []
    registers = {"X1": 100.0, "X2": 200.0, "X3": 300.0}
    start = datetime(2026, 1, 5, tzinfo=UTC)
    for k in range(1, days * 96 + 1):
        ts = (start + timedelta(minutes=15 * k)).strftime("%Y-%m-%d %H:%M:%S")  # another format than the contract's
        for meter in registers:
            registers[meter] = round(registers[meter] + 0.1, 4)
            if meter == "X3" and k == 130:
                registers[meter] -= 5.0
            rows.append([ts, meter, 0.1, registers[meter]])
    return rows


def test_renamed_columns_no_area_and_no_archive_infer_a_default_archive_and_say_so(tmp_path: Path) -> None:
    readings = _write(tmp_path / "export.csv", ["time", "mp", "kwh", "reg"], _household_rows())
    columns = Columns.of({"ts": "time", "meter": "mp", "energy": "kwh", "register": "reg"})
    scores = io.StringIO()
    done = backtest(Backtest(readings, columns), scores)
    assert done.areas == 1 and done.meters == 3 and done.interval_minutes == 15
    assert any("inferred" in note for note in done.notes)
    assert any("no area meters" in note for note in done.notes)
    alerts = fold_alerts(done.result.records)
    decreases = [a for a in alerts if a["type"] == "register_decrease"]
    assert [(a["subject_id"], a["area_id"]) for a in decreases] == [("X3", DEFAULT_AREA)]
    table = list(csv.reader(io.StringIO(scores.getvalue())))
    assert tuple(table[0]) == SCORE_COLUMNS
    day_one = {row[0]: row for row in table[1:] if row[2] == "2026-01-05"}
    assert set(day_one) == {"X1", "X2", "X3"}
    assert float(day_one["X1"][3]) == pytest.approx(9.6) and day_one["X1"][4] == "96"
    assert len(table) - 1 == 3 * 2  # three meters, two days (the last one closed at the end)


def test_a_file_out_of_time_order_is_sorted_and_gives_the_same_alerts(tmp_path: Path) -> None:
    rows = _household_rows()
    header = ["ts", "meter_id", "energy_kwh", "register_fwd_kwh"]
    ordered = backtest(Backtest(_write(tmp_path / "a.csv", header, rows)))
    by_meter = sorted(rows, key=lambda r: r[1])
    shuffled = backtest(Backtest(_write(tmp_path / "b.csv", header, by_meter)))
    assert any("sorted in memory" in note for note in shuffled.notes)
    assert _canonical(shuffled.result.records) == _canonical(ordered.result.records)


def test_alerts_are_written_as_the_topics_records_or_as_one_csv_row_per_alert(tmp_path: Path) -> None:
    records = [
        {"alert_id": "a1", "op": "open", "type": "register_decrease", "subject_kind": "meter", "subject_id": "X3",
         "area_id": "all", "severity": "high", "score": 0.9, "status": "open", "first_seen": "2026-01-06T08:30:00Z",
         "last_seen": "2026-01-06T08:30:00Z", "evidence": {"drop_kwh": 5.0}},
    ]  # fmt: skip
    records.append({**records[0], "op": "resolve", "status": "resolved"})
    assert write_alerts(tmp_path / "alerts.jsonl", records) == 2
    assert [orjson.loads(line) for line in (tmp_path / "alerts.jsonl").read_bytes().splitlines()] == records
    assert write_alerts(tmp_path / "alerts.csv", records) == 1
    (row,) = list(csv.DictReader((tmp_path / "alerts.csv").open()))
    assert row["status"] == "resolved" and orjson.loads(row["evidence"]) == {"drop_kwh": 5.0}


def test_missing_columns_and_parquet_without_pyarrow_are_clear_errors(tmp_path: Path) -> None:
    bad = _write(tmp_path / "bad.csv", ["meter_id", "when", "energy_kwh"], [["X1", "2026-01-05T00:15:00Z", 0.1]])
    with pytest.raises(ValueError, match="no column ts"):
        list(read_rows(bad, Columns.of({})))
    with pytest.raises(ValueError, match="unknown readings field"):
        Columns.of({"colour": "x"})
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="needs pyarrow"):
            list(read_rows(tmp_path / "x.parquet", Columns.of({})))


def test_timestamps_are_normalised_to_the_contracts_form() -> None:
    assert iso_ts("2026-01-05T00:15:00Z") == "2026-01-05T00:15:00Z"
    assert iso_ts("2026-01-05 08:15:00+08:00") == "2026-01-05T00:15:00Z"
    assert iso_ts("2026-01-05T00:15:00") == "2026-01-05T00:15:00Z"
    assert iso_ts("2026-01-05T00:15:00.5Z") == "2026-01-05T00:15:00.500000Z"


def test_the_command_writes_alerts_and_scores_and_says_what_it_assumed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    readings = _write(tmp_path / "export.csv", ["time", "mp", "kwh", "reg"], _household_rows())
    alerts, scores = tmp_path / "out" / "alerts.csv", tmp_path / "out" / "scores.csv"
    argv = ["backtest", "--readings", str(readings), "--col-ts", "time", "--col-meter", "mp", "--col-energy", "kwh",
            "--col-register", "reg", "--granularity", "15", "--alerts", str(alerts), "--scores", str(scores)]  # fmt: skip
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "inferred" in err and "register_decrease" in out
    assert [row["type"] for row in csv.DictReader(alerts.open())] == ["register_decrease"]
    assert len(list(csv.DictReader(scores.open()))) == 6
    assert main(["backtest", "--readings", str(tmp_path / "missing.csv")]) == 2
    assert "missing.csv" in capsys.readouterr().err
