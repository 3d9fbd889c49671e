"""The detector's ``archives`` table values: lz4-compressed archive JSON, plain JSON still read, decoded once."""

from __future__ import annotations

import orjson

from services.detector.codec import ArchiveCache, archive_from_table, pack_archive
from simulators.generate import Simulation
from simulators.scenario import scenario


def _archive_json() -> bytes:
    sim = Simulation(scenario("small", areas=1, meters_per_area=50, days=1, seed=1))
    return orjson.dumps(sim.fleets[0].archive_record(sim.grid.ts(-1)), option=orjson.OPT_SERIALIZE_NUMPY)


def test_packed_archives_are_smaller_and_decode_like_the_json() -> None:
    value = _archive_json()
    packed = pack_archive(value)
    assert len(packed) * 4 < len(value)
    from_packed, from_json = archive_from_table(packed), archive_from_table(value)  # a changelog from before packing
    assert from_packed.area_id == from_json.area_id == "A0001"
    assert from_packed.meter_ids == from_json.meter_ids and len(from_packed.meter_ids) == 50


def test_the_cache_decodes_a_value_once_and_again_when_it_changes() -> None:
    value = _archive_json()
    cache = ArchiveCache()
    first = cache.get(b"A0001", pack_archive(value))
    assert cache.get(b"A0001", pack_archive(value)) is first  # equal bytes: the decoded archive is reused
    changed = value.replace(b'"loss_limit_pct":10.0', b'"loss_limit_pct":12.0')
    assert changed != value
    assert cache.get(b"A0001", pack_archive(changed)) is not first
