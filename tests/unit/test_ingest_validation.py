"""Ingest's pure checks: each reason code, the order of checks, the split of a partly bad upload."""

from __future__ import annotations

import base64
import copy
from typing import Any

import orjson
import pytest
from jsonschema import ValidationError

import schemas
from services.ingest.dlq import dead_letter
from services.ingest.validation import REASONS, reason_of, validate

TS = "2026-01-05T00:15:00Z"


def meter_reading(**changes: Any) -> dict[str, Any]:
    reading = {
        "kind": "meter_reading",
        "meter_id": "M0001-0007",
        "area_id": "A0001",
        "ts": TS,
        "interval_minutes": 15,
        "unit": "kWh",
        "energy": 0.42,
        "register_fwd": 10234.51,
        "voltage": {"a": 229.8},
        "current": {"a": 1.9},
        "meter_time": "2026-01-05T00:15:02Z",
    }
    reading.update(changes)
    return {k: v for k, v in reading.items() if v is not None}


def upload(items: list[Any], **changes: Any) -> dict[str, Any]:
    message = {
        "kind": "concentrator_upload",
        "concentrator_id": "C0001",
        "area_id": "A0001",
        "ts": TS,
        "interval_minutes": 15,
        "area_meter": {"meter_id": "T0001", "energy": 61.2, "register_fwd": 88123.4},
        "readings": items,
    }
    message.update(changes)
    return {k: v for k, v in message.items() if v is not None}


def item(meter: str, **changes: Any) -> dict[str, Any]:
    return {"meter_id": meter, "energy": 0.3, "register_fwd": 100.0, **changes}


def reasons(value: bytes) -> list[tuple[str, int | None]]:
    return [(r.reason, r.index) for r in validate(value).rejections]


# -- one raw case per reason code (the state-dependent ones are in test_ingest_admission) ----------

CASES: dict[str, bytes] = {
    "not_json": b'{"kind": "meter_reading", "meter_id": "M1" "energy": 0.1}',
    "nan": orjson.dumps(meter_reading()).replace(b'"energy":0.42', b'"energy":NaN'),
    "negative_energy": orjson.dumps(meter_reading(energy=-0.42)),
    "misaligned_timestamp": orjson.dumps(meter_reading(ts="2026-01-05T00:07:30Z")),
    "unknown_unit": orjson.dumps(meter_reading(unit="MWh")),
    "schema": orjson.dumps(meter_reading(tariff="residential_tou")),
}


@pytest.mark.parametrize("reason", sorted(CASES))
def test_each_pure_reason_code(reason: str) -> None:
    assert reasons(CASES[reason]) == [(reason, None)]
    assert reason in REASONS


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xff\xfe{}",  # not UTF-8
        b'{"kind": "meter_reading"',  # truncated
        b"NaN NaN",
        None,
    ],
)
def test_not_json(raw: bytes | None) -> None:
    assert [reason for reason, _ in reasons(raw)] == ["not_json"]


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_non_finite_numbers_are_nan_not_not_json(token: bytes) -> None:
    raw = orjson.dumps(meter_reading()).replace(b'"energy":0.42', b'"energy":' + token)
    assert reasons(raw) == [("nan", None)]


def test_nan_beats_a_schema_fault_in_the_same_reading() -> None:
    raw = orjson.dumps(meter_reading(extra=1)).replace(b'"energy":0.42', b'"energy":NaN')
    assert reasons(raw) == [("nan", None)]


def test_json_that_is_not_an_object_or_of_unknown_kind_is_schema() -> None:
    assert reasons(b"[1, 2]") == [("schema", None)]
    assert reasons(orjson.dumps(meter_reading(kind="reading"))) == [("schema", None)]


def test_impossible_calendar_date_is_schema() -> None:
    assert reasons(orjson.dumps(meter_reading(ts="2026-02-30T00:15:00Z"))) == [("schema", None)]
    bad_event = meter_reading(events=[{"code": "cover_open", "at": "2026-02-31T00:00:00Z"}])
    assert reasons(orjson.dumps(bad_event)) == [("schema", None)]


# -- the mapping of JSON Schema errors to reasons, explicitly ---------------------------------------


def _errors(obj: dict[str, Any]) -> list[ValidationError]:
    return list(schemas.validator(obj["kind"]).iter_errors(obj))


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"unit": "MWh"}, "unknown_unit"),
        ({"unit": 1000}, "unknown_unit"),
        ({"energy": -0.1}, "negative_energy"),
        ({"register_fwd": -5}, "negative_energy"),
        ({"register_rev": -0.5}, "negative_energy"),
        ({"demand_kw": -1}, "schema"),  # power, not energy
        ({"voltage": {"a": -230}}, "schema"),
        ({"energy": "0.42"}, "schema"),
        ({"interval_minutes": 5}, "schema"),
        ({"events": [{"code": "lid_lifted", "at": TS}]}, "schema"),
    ],
)
def test_reason_of_each_schema_error(changes: dict[str, Any], reason: str) -> None:
    errors = _errors(meter_reading(**changes))
    assert [reason_of(e) for e in errors] == [reason]
    assert reasons(orjson.dumps(meter_reading(**changes))) == [(reason, None)]


def test_most_specific_reason_wins_among_several_errors() -> None:
    # unknown_unit > negative_energy > schema
    assert reasons(orjson.dumps(meter_reading(unit="MWh", energy=-1, extra=1))) == [("unknown_unit", None)]
    assert reasons(orjson.dumps(meter_reading(energy=-1, extra=1))) == [("negative_energy", None)]


def test_rejection_message_names_the_path_and_rule() -> None:
    (rejection,) = validate(orjson.dumps(upload([item("M1"), item("M2", energy=-1.2)]))).rejections
    assert rejection.message == "readings[1].energy: -1.2 is less than the minimum of 0"
    (missing,) = validate(orjson.dumps(meter_reading(energy=None, register_fwd=None))).rejections
    assert "'energy' is a required property" in missing.message and "A0001" not in missing.message


# -- uploads: split, inheritance, the envelope judged once -----------------------------------------


def test_partly_bad_upload_is_split_with_indexes() -> None:
    raw = orjson.dumps(
        upload(
            [
                item("M1"),
                item("M2", energy=-1.2),
                item("M3", unit="MWh"),
                item("M4"),
                item("M5", ts="2026-01-05T00:09:00Z"),
                {"energy": 0.1},
                item("M7", extra=True),
                item("M8", energy=12345.678),
            ]
        )
    ).replace(b"12345.678", b"NaN")
    parsed = validate(raw)
    assert [(r.meter_id, r.index) for r in parsed.readings] == [("T0001", None), ("M1", 0), ("M4", 3)]
    assert reasons(raw) == [
        ("negative_energy", 1),
        ("unknown_unit", 2),
        ("misaligned_timestamp", 4),
        ("schema", 5),
        ("schema", 6),
        ("nan", 7),
    ]
    assert [r.meter_id for r in parsed.rejections] == ["M2", "M3", "M5", None, "M7", "M8"]
    assert all(r.area_id == "A0001" for r in parsed.rejections)


def test_a_bad_area_meter_is_rejected_alone_without_index() -> None:
    parsed = validate(orjson.dumps(upload([item("M1")], area_meter={"meter_id": "T0001"})))
    assert [(r.reason, r.index, r.meter_id) for r in parsed.rejections] == [("schema", None, "T0001")]
    assert [r.meter_id for r in parsed.readings] == ["M1"]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"unit": "kwh"}, "unknown_unit"),
        ({"ts": "2026-01-05T00:20:00Z"}, "misaligned_timestamp"),
        ({"concentrator_id": None}, "schema"),
        ({"readings": {"meter_id": "M1"}}, "schema"),
        ({"sequence": 7}, "schema"),
    ],
)
def test_envelope_fault_rejects_the_upload_once(changes: dict[str, Any], reason: str) -> None:
    parsed = validate(orjson.dumps(upload([item("M1"), item("M2", energy=-1)], **changes)))
    assert [(r.reason, r.index) for r in parsed.rejections] == [(reason, None)]
    assert parsed.readings == []


def test_items_inherit_and_override_the_envelope() -> None:
    parsed = validate(
        orjson.dumps(
            upload(
                [
                    item("M1"),
                    item("M2", unit="Wh", energy=300, register_fwd=100000),
                    item("M3", ts="2026-01-05T00:00:00Z"),
                    item("M4", interval_minutes=60, ts="2026-01-05T01:00:00Z"),
                ],
                unit="kWh",
            )
        )
    )
    assert not parsed.rejections
    by_meter = {r.meter_id: r for r in parsed.readings}
    assert by_meter["M2"].values[:2] == (0.3, 100.0)
    assert by_meter["M3"].ts == by_meter["M1"].ts - 900
    assert (by_meter["M4"].interval_minutes, by_meter["M4"].ts) == (60, by_meter["M1"].ts + 2700)
    assert parsed.envelope == ("A0001", by_meter["M1"].ts)


def test_item_interval_override_realigns_the_inherited_ts() -> None:
    # 00:15 is a 15-minute boundary but 15 min off the hour: misaligned for a 60-minute reading.
    parsed = validate(orjson.dumps(upload([item("M1", interval_minutes=60)])))
    assert [(r.reason, r.index) for r in parsed.rejections] == [("misaligned_timestamp", 0)]


def test_valid_examples_pass_whole() -> None:
    for name in ("meter_reading", "area_meter_reading", "concentrator_upload"):
        for path, obj in schemas.examples(name)[0]:
            parsed = validate(orjson.dumps(obj))
            assert not parsed.rejections, path
            assert parsed.kind == name


# -- dead letters -----------------------------------------------------------------------------------


class _Record:
    topic, partition, offset, key, timestamp, headers = "ami.readings.raw", 3, 1042, b"A0001", 1767571200000, ()

    def __init__(self, value: bytes) -> None:
        self.value = value


@pytest.mark.parametrize("raw", [*CASES.values(), orjson.dumps(upload([item("M1"), item("M2", energy=-1)]))])
def test_dead_letters_follow_the_contract(raw: bytes) -> None:
    record = _Record(raw)
    for rejection in validate(raw).rejections:
        letter = dead_letter(rejection, record)
        schemas.validator("dead_letter").validate(letter)
        assert letter["origin"] == {
            "topic": "ami.readings.raw",
            "partition": 3,
            "offset": 1042,
            "key": "A0001",
            "timestamp_ms": 1767571200000,
        }
        assert base64.b64decode(letter["original"]) == raw


def test_validation_does_not_mutate_or_depend_on_the_object() -> None:
    message = upload([item("M1")])
    before = copy.deepcopy(message)
    raw = orjson.dumps(message)
    first, second = validate(raw), validate(raw)
    assert message == before
    assert [r.values for r in first.readings] == [r.values for r in second.readings]
