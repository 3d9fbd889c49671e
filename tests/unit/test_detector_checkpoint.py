"""The detector's checkpointed state: record formats and when a partition's live states are written."""

from __future__ import annotations

from services.detector.checkpoint import (
    CheckpointPolicy,
    LiveArea,
    LiveAreas,
    pack_offsets,
    pack_state,
    unpack_offsets,
    unpack_state,
)
from services.detector.state import AreaState


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def area(name: str, offset: int = 0) -> LiveArea:
    return LiveArea(offset, AreaState(name))


def test_state_record_carries_the_offset_of_the_last_frame_folded_in() -> None:
    data = AreaState("A1", meter_ids=("M1", "M2")).to_bytes()
    assert unpack_state(pack_state(1234, data)) == (1234, data)
    assert unpack_state(pack_state(-1, data)) == (-1, data)


def test_offsets_record_holds_applied_and_checkpointed() -> None:
    assert unpack_offsets(pack_offsets(90, 41)) == (90, 41)
    assert unpack_offsets(b"17") == (17, 17)  # one offset: states were written after every frame


def test_a_partition_is_due_once_its_areas_have_enough_unwritten_frames_on_average() -> None:
    live = LiveAreas(CheckpointPolicy(frames_per_area=3, max_age_s=1e9), clock=Clock())
    a, b = area("A1"), area("A2")
    for _ in range(4):
        live.folded(0, b"A1", a)
    live.folded(0, b"A2", b)
    assert live.due() == []  # 5 frames over 2 areas
    live.folded(0, b"A2", b)
    assert live.due() == [0]  # 6 frames over 2 areas: 3 per area


def test_a_quiet_partition_is_due_by_the_age_of_its_oldest_unwritten_frame() -> None:
    clock = Clock()
    live = LiveAreas(CheckpointPolicy(frames_per_area=100, max_age_s=60.0), clock=clock)
    live.folded(2, b"A1", area("A1"))
    clock.now += 59.0
    live.folded(2, b"A1", live.partition(2).areas[b"A1"])
    assert live.due() == []
    clock.now += 1.0
    assert live.due() == [2]


def test_written_clears_what_was_due_and_a_clean_partition_is_never_due() -> None:
    clock = Clock()
    live = LiveAreas(CheckpointPolicy(frames_per_area=1, max_age_s=10.0), clock=clock)
    live.folded(1, b"A1", area("A1"))
    live.partition(3).areas[b"A9"] = area("A9")  # loaded, not changed
    assert live.due() == [1] and live.dirty() == [1]
    live.written(1)
    clock.now += 1e6
    assert live.due() == [] and live.dirty() == []
    assert live.partition(1).areas[b"A1"].state.area_id == "A1"  # written states stay live


def test_partitions_no_longer_held_are_forgotten_and_come_back_empty() -> None:
    live = LiveAreas(CheckpointPolicy())
    live.folded(0, b"A1", area("A1"))
    live.folded(1, b"A2", area("A2"))
    live.partition(1).rebuilt = True
    live.keep_only({0})
    assert live.keys() == {b"A1"}
    again = live.partition(1)
    assert again.areas == {} and not again.rebuilt
