"""The checkpoint: offset ranges, the record, the replay rule, and the property they exist for.

The property: a partition's committed output is the same whether ingest ran
through uninterrupted or crashed any number of times between commits and
restarted from its last checkpoint. Tested on random streams with every
fault (duplicates, conflicts, late and multi-frame uploads, gaps, rejected
readings inside uploads, an archive change mid-stream) and random batch and
crash schedules.
"""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from services.ingest.archive_view import ArchiveView, AreaArchive
from services.ingest.checkpoint import AreaMark, Checkpoint, OffsetRanges, ReplayPlan, area_key, assemble, checkpoint_key
from services.ingest.normalise import Reading, format_time, parse_time
from services.ingest.partition import PartitionProcessor

T0 = int(parse_time("2026-01-05T00:00:00Z"))
WALL = float(T0 + 30 * 86400)
AREAS = ("A1", "A2", "A3")
METERS = 6


# -- OffsetRanges -----------------------------------------------------------------------------------


def test_offset_ranges_compact_runs_and_answer_membership() -> None:
    ranges = OffsetRanges.of([7, 3, 4, 5, 10, 4, 11])
    assert ranges.ranges() == [[3, 6], [7, 8], [10, 12]]
    assert [o for o in range(13) if o in ranges] == [3, 4, 5, 7, 10, 11]
    assert (ranges.first, ranges.stop, len(ranges), list(ranges)) == (3, 12, 6, [3, 4, 5, 7, 10, 11])
    assert not OffsetRanges.of([]) and OffsetRanges.of([]).first is None


@pytest.mark.parametrize("bad", [[(3, 3)], [(5, 8), (7, 9)], [(5, 8), (1, 2)]])
def test_offset_ranges_must_be_sorted_disjoint_and_non_empty(bad: list[tuple[int, int]]) -> None:
    with pytest.raises(ValueError):
        OffsetRanges(bad)


# -- the record -------------------------------------------------------------------------------------


def _checkpoint() -> Checkpoint:
    return Checkpoint(
        partition=2,
        committed=100,
        end=180,
        open=OffsetRanges([(100, 102), (150, 180)]),
        rejected={101: (3, -1)},
        area_ids=["A2", "A1"],
        marks={
            "A1": AreaMark(T0 + 900, [(T0 + 900, 15)], [(T0, 15, 0), (T0 - 900, 15, 2)]),
            "A2": AreaMark(T0, [], [(T0, 15, 0)], {(T0, 15): {"M2-1": 7, "T2": 9}}),
        },
        newest=T0 + 900,
        worker="w1",
    )


def test_checkpoint_is_a_head_and_one_record_per_area_and_round_trips() -> None:
    checkpoint = _checkpoint()
    records = dict(checkpoint.records("g"))
    head = checkpoint_key("g", 2)
    assert sorted(records) == [b"g|2", b"g|2|A1", b"g|2|A2"] and area_key(head, "A1") == b"g|2|A1"
    assert assemble(records, "g", 2) == checkpoint
    assert assemble(records, "g", 3) is None and assemble(records, "other", 2) is None
    assert orjson.loads(records[head]) == {
        "version": 2,
        "partition": 2,
        "committed": 100,
        "end": 180,
        "open": [[100, 102], [150, 180]],
        "rejected": [[101, [3, -1]]],
        "areas": ["A1", "A2"],
        "newest": T0 + 900,
        "worker": "w1",
    }
    assert orjson.loads(records[b"g|2|A1"]) == {
        "wm": T0 + 900,
        "open": [[T0 + 900, 15]],
        "closed": [[T0 - 900, 15, 2], [T0, 15, 0]],
        "sent": [],
    }
    assert orjson.loads(records[b"g|2|A2"])["sent"] == [[T0, 15, {"M2-1": 7, "T2": 9}]]


def test_assemble_takes_each_area_from_its_latest_record_and_refuses_a_missing_one() -> None:
    first = _checkpoint()
    later = Checkpoint(2, 180, 181, OffsetRanges(), {}, ["A1", "A2"], {"A1": AreaMark(T0 + 1800, [], [])}, T0 + 1800)
    topic = dict(first.records("g")) | dict(later.records("g"))  # a compacted topic keeps the latest per key
    got = assemble(topic, "g", 2)
    assert got is not None and (got.committed, got.end) == (180, 181)
    assert got.marks == {"A1": later.marks["A1"], "A2": first.marks["A2"]}
    del topic[b"g|2|A2"]
    with pytest.raises(ValueError, match="A2"):
        assemble(topic, "g", 2)
    with pytest.raises(ValueError, match="version"):
        assemble({b"g|2": orjson.dumps({"version": 1, "areas": {}})}, "g", 2)


def test_checkpoint_rejects_inconsistent_offsets() -> None:
    with pytest.raises(ValueError):
        Checkpoint(0, 10, 5, OffsetRanges(), {}, [], {}, None)
    with pytest.raises(ValueError):  # c must be the first open offset
        Checkpoint(0, 10, 20, OffsetRanges([(12, 13)]), {}, [], {}, None)
    with pytest.raises(ValueError):
        Checkpoint(0, 10, 20, OffsetRanges([(10, 21)]), {}, [], {}, None)
    with pytest.raises(ValueError, match="A9"):  # a mark of an area the head does not list
        Checkpoint(0, 10, 10, OffsetRanges(), {}, ["A1"], {"A9": AreaMark(T0, [], [])}, None)


def test_replay_plan_decisions() -> None:
    plan = ReplayPlan(_checkpoint())

    def reading(index: int | None, ts: int = T0 + 900, area: str = "A1") -> Reading:
        return Reading(area, "M1", ts, 15, False, (0.1,) + (None,) * 11, (), index)

    assert [plan.covers(o) for o in (100, 179, 180)] == [True, True, False]
    assert [plan.wants(o) for o in (100, 101, 102, 149, 150, 179)] == [True, True, False, False, True, True]
    assert plan.keeps(100, reading(3)) and plan.keeps(150, reading(None))
    assert not plan.keeps(101, reading(3)) and not plan.keeps(101, reading(None))  # recorded as rejected
    assert plan.keeps(101, reading(2))
    assert not plan.keeps(100, reading(0, ts=T0))  # its frame was closed: already emitted
    assert not plan.keeps(100, reading(0, area="A2"))


def test_processor_checkpoint_commits_only_up_to_the_first_open_offset() -> None:
    archive = _archive()
    processor = PartitionProcessor(0, archive, clock=lambda: WALL)
    complete = _upload("A1", 1, [f"M1-{i}" for i in range(1, METERS + 1)], area_meter=True)
    partial = _upload("A2", 1, ["M2-1"], area_meter=False)
    for offset, value in enumerate([complete, partial, complete, b"{bad"]):
        processor.process(_Record(offset, value))
    checkpoint = processor.checkpoint()
    assert checkpoint is not None
    # offset 0 completed A1; 1 holds A2's open frame; 2 re-sent A1 identically (dropped); 3 was a dead letter
    assert (checkpoint.committed, checkpoint.end, checkpoint.open.ranges()) == (1, 4, [[1, 2]])
    assert checkpoint.area_ids == ("A1", "A2")
    assert checkpoint.marks["A2"].open == ((T0 + 900, 15),)
    assert checkpoint.marks["A1"].closed == ((T0 + 900, 15, 0),)
    assert len(checkpoint.marks["A1"].sent[(T0 + 900, 15)]) == METERS + 1  # the area meter too
    processor.process(_Record(4, partial.replace(b'"M2-1"', b'"M2-2"')))  # joins A2's open frame: no change
    assert set(processor.checkpoint().marks) == set()
    processor.process(_Record(5, _upload("A2", 2, ["M2-1"], area_meter=False)))  # opens a frame, moves A2's watermark
    later = processor.checkpoint()
    assert later is not None and later.area_ids == ("A1", "A2") and set(later.marks) == {"A2"}


# -- the property -----------------------------------------------------------------------------------


class _Record:
    topic, partition, key, timestamp, headers = "raw", 0, b"A1", 0, ()

    def __init__(self, offset: int, value: bytes) -> None:
        self.offset = offset
        self.value = value


def _archive() -> ArchiveView:
    archive = ArchiveView()
    for a, area in enumerate(AREAS, 1):
        meters = {f"M{a}-{i}": "active" for i in range(1, METERS + 1)}
        if area == "A3":
            del meters["M3-6"]  # arrives with an archive change mid-stream
        archive.put(AreaArchive(area, f"T{a}", meters))
    return archive


def _item(meter: str, rng: random.Random | None = None, **extra: Any) -> dict[str, Any]:
    energy = round(rng.uniform(0, 2), 3) if rng else 0.5
    return {"meter_id": meter, "energy": energy, "register_fwd": 1000 + energy, **extra}


def _upload(
    area: str, k: int, meters: list[str], area_meter: bool, rng: random.Random | None = None, items: list | None = None
) -> bytes:
    a = area[1:]
    message: dict[str, Any] = {
        "kind": "concentrator_upload",
        "concentrator_id": f"C{a}",
        "area_id": area,
        "ts": format_time(T0 + k * 900),
        "interval_minutes": 15,
        "readings": items if items is not None else [_item(m, rng) for m in meters],
    }
    if area_meter:
        message["area_meter"] = {"meter_id": f"T{a}", "energy": 30.0 + k}
    return orjson.dumps(message)


def _single(area: str, meter: str, k: int, rng: random.Random, kind: str = "meter_reading") -> bytes:
    return orjson.dumps(
        {"kind": kind, "area_id": area, "ts": format_time(T0 + k * 900), "interval_minutes": 15, **_item(meter, rng)}
    )


ARCHIVE_CHANGE = "archive-change"


def _stream(seed: int) -> list[bytes | str]:
    """Raw values in offset order, with one archive change marker (it is not a record)."""
    rng = random.Random(seed)
    out: list[bytes | str] = []
    held: list[tuple[int, bytes]] = []
    for k in range(1, 25):
        if k == 12:
            out.append(ARCHIVE_CHANGE)
        for area in rng.sample(AREAS, len(AREAS)):
            a = area[1:]
            meters = [f"M{a}-{i}" for i in range(1, METERS + 1) if rng.random() > 0.1]
            if rng.random() < 0.5:
                items = [_item(m, rng) for m in meters]
                if rng.random() < 0.3:
                    items.append(_item(f"M{a}-{rng.randint(1, METERS)}", rng, ts=format_time(T0 + (k - 1) * 900)))
                if rng.random() < 0.2:
                    items.append(_item(f"M{a}-1", rng, energy=-1))
                messages = [_upload(area, k, meters, rng.random() < 0.8, rng, items)]
            else:
                messages = [_single(area, m, k, rng) for m in meters]
                if rng.random() < 0.8:
                    messages.append(_single(area, f"T{a}", k, rng, kind="area_meter_reading"))
                rng.shuffle(messages)
            for message in messages:
                roll = rng.random()
                if roll < 0.08:
                    held.append((k + rng.randint(1, 5), message))  # arrives late
                    continue
                out.append(message)
                if roll < 0.15:
                    out.append(message)  # identical re-send
                elif roll < 0.2:
                    out.append(message.replace(b'"energy":', b'"energy":1', 1))  # conflicting re-send
        for due in [m for m in held if m[0] <= k]:
            held.remove(due)
            out.append(due[1])
        if rng.random() < 0.3:
            out.append(rng.choice([b"{not json", _single("A9", "M9-1", k, rng), _single("A1", "M1-1", k + 20, rng)]))
    return out


def _change_archive(archive: ArchiveView) -> None:
    archive.put(AreaArchive("A3", "T3", {f"M3-{i}": "active" for i in range(1, METERS + 1)}))


def _output(outcome_frames: list[dict], letters: list[dict]) -> list[bytes]:
    return [orjson.dumps(f) for f in outcome_frames] + [orjson.dumps({**d, "rejected_at": None}) for d in letters]


def _uninterrupted(stream: list[bytes | str]) -> list[bytes]:
    archive = _archive()
    processor = PartitionProcessor(0, archive, clock=lambda: WALL)
    out: list[bytes] = []
    offset = 0
    for value in stream:
        if value == ARCHIVE_CHANGE:
            _change_archive(archive)
            continue
        outcome = processor.process(_Record(offset, value))
        out += _output(outcome.frames, outcome.dead_letters)
        offset += 1
    return out + _output(processor.flush(), [])


def _with_crashes(stream: list[bytes | str], rng: random.Random) -> tuple[list[bytes], int]:
    """Batches of random size, each committed or lost to a crash; restarts replay from the checkpoint."""
    records = [v for v in stream if v != ARCHIVE_CHANGE]
    change_at = stream.index(ARCHIVE_CHANGE)  # offset before which the archive changes
    archive = _archive()
    changed = False
    committed: list[bytes] = []
    topic: dict[bytes, bytes] = {}  # the compacted checkpoint topic: latest value per key
    checkpoint: Checkpoint | None = None
    processor = PartitionProcessor(0, archive, clock=lambda: WALL)
    position, crashes = 0, 0
    while position < len(records):
        stop = min(len(records), position + rng.randint(1, 25))
        if position < change_at < stop:
            stop = change_at  # the archive changes between batches, as a live topic update would
        batch: list[bytes] = []
        for offset in range(position, stop):
            if offset == change_at and not changed:
                _change_archive(archive)
                changed = True
            outcome = processor.process(_Record(offset, records[offset]))
            if outcome.replayed:
                assert not outcome.dead_letters
            batch += _output(outcome.frames, outcome.dead_letters)
        position = stop
        if rng.random() < 0.3:  # crash: the batch never commits
            crashes += 1
            processor = PartitionProcessor(0, archive, checkpoint=checkpoint, clock=lambda: WALL)
            position = checkpoint.committed if checkpoint else 0
            continue
        new = processor.checkpoint()
        if new is None:
            assert batch == [] or processor.replay_end is None
        else:
            topic.update(new.records("g"))
            checkpoint = assemble(topic, "g", 0)  # what a restart would load
            assert checkpoint is not None and checkpoint.marks == processor.assembler.marks()
        committed += batch
    return committed + _output(processor.flush(), []), crashes


@pytest.mark.parametrize("seed", range(10))
def test_crashes_and_restarts_change_nothing_committed(seed: int) -> None:
    stream = _stream(seed)
    expected = _uninterrupted(stream)
    kinds = {orjson.loads(v).get("closed_by", orjson.loads(v).get("reason")) for v in expected}
    assert {"complete", "grace", "late", "idle", "negative_energy", "unknown_area", "unknown_meter"} <= kinds
    rng = random.Random(1000 + seed)
    total_crashes = 0
    for _ in range(5):
        got, crashes = _with_crashes(stream, rng)
        total_crashes += crashes
        assert got == expected
    assert total_crashes > 5
