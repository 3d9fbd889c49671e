"""The bench's alert latency: each (alert, last_seen) against its area's data arrival, kept per alert type and
split into the hops between."""

import pytest

from amiwatch.bench.latency import epoch, latencies, percentiles, stages


def test_latency_is_counted_per_type_from_the_arrival_of_the_last_seen_interval() -> None:
    ts = "2026-01-05T10:00:00Z"
    index = {("A1", epoch(ts)): 1000.0, ("A2", epoch(ts)): 1001.0}
    first_seen = {
        ("a1", ts): (1001.5, "A1", "tamper_event"),
        ("a2", ts): (1003.0, "A2", "tamper_event"),
        ("a3", ts): (1004.0, "A1", "consumption_swing"),
        ("a4", "2026-01-04T10:00:00Z"): (1004.0, "A1", "sustained_drop"),  # history from the load: no sample
    }
    assert latencies(first_seen, index) == {"tamper_event": [1.5, 2.0], "consumption_swing": [4.0]}


def test_each_sample_is_split_at_its_frame_and_its_alert_record() -> None:
    ts = "2026-01-05T10:00:00Z"
    arrived = {("A1", epoch(ts)): 1000.0, ("A2", epoch(ts)): 1001.0}
    framed = {("A1", epoch(ts)): (1000.25, "complete"), ("A2", epoch(ts)): (1001.5, "grace")}
    alerted = {("a1", ts): 1001.0, ("a3", ts): 1003.0}
    first_seen = {
        ("a1", ts): (1001.5, "A1", "tamper_event"),
        ("a2", ts): (1003.0, "A2", "tamper_event"),  # no alert record after the phase began: left out
        ("a3", ts): (1004.0, "A1", "consumption_swing"),
    }
    got = stages(first_seen, arrived, framed, alerted)
    assert got == {
        "ingest": [0.25, 0.25],
        "ingest_complete": [0.25, 0.25],
        "ingest_grace": [],
        "detector": [0.75, 2.75],
        "api": [0.5, 1.0],
    }
    hops = [i + d + a for i, d, a in zip(got["ingest"], got["detector"], got["api"], strict=True)]
    assert hops == pytest.approx([1.5, 4.0])  # each sample's hops add up to its latency


def test_percentiles_of_nothing_are_none() -> None:
    assert percentiles([]) == {"p50_s": None, "p99_s": None, "max_s": None, "samples": 0}
    assert percentiles([1.0, 3.0])["p50_s"] == 2.0
