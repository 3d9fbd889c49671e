"""``amiwatch ingest``'s flags and the metrics it exposes."""

from __future__ import annotations

import argparse

from prometheus_client import REGISTRY

from services.ingest import cli, metrics
from services.ingest.service import transactional_id


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["ingest", *argv])


def test_flags_and_defaults() -> None:
    args = parse()
    assert (args.exit_when_idle, args.grace_intervals, args.group, args.metrics_port) == (None, 2, None, None)
    assert (args.idle_flush, args.max_batch, args.max_batch_seconds, args.func) == (300, 2000, 0.1, cli.ingest)
    args = parse(
        "--exit-when-idle", "5", "--grace-intervals", "4", "--group", "g", "--metrics-port", "0", "--worker", "w"
    )
    assert (args.exit_when_idle, args.grace_intervals, args.group, args.metrics_port, args.worker) == (
        5.0,
        4,
        "g",
        0,
        "w",
    )


def test_transactional_id_is_stable_per_group_and_worker() -> None:
    assert transactional_id("ami.ingest", "host-1") == transactional_id("ami.ingest", "host-1")
    assert transactional_id("ami.ingest", "host-1") != transactional_id("ami.ingest", "host-2")
    assert transactional_id("ami.ingest", "host-1") != transactional_id("other", "host-1")


def test_metric_names_carry_the_namespace_and_counters_end_in_total() -> None:
    ours = [m for m in REGISTRY.collect() if m.name.startswith("amiwatch_ingest")]
    assert {m.name for m in ours} >= {
        "amiwatch_ingest_messages",
        "amiwatch_ingest_readings",
        "amiwatch_ingest_frames_emitted",
        "amiwatch_ingest_open_frames",
        "amiwatch_ingest_batch_seconds",
        "amiwatch_ingest_transaction_commit_seconds",
        "amiwatch_ingest_consumer_lag_messages",
    }
    for metric in ours:
        if metric.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in metric.samples), metric.name


def test_count_frame_counts_what_a_frame_carries() -> None:
    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = (
        value("amiwatch_ingest_frames_emitted_total", closed_by="late"),
        value("amiwatch_ingest_late_readings_total"),
        value("amiwatch_ingest_duplicates_dropped_total"),
        value("amiwatch_ingest_conflicts_total"),
    )
    frame = {"closed_by": "late", "stats": {"readings": 3, "duplicates_dropped": 2}, "conflicts": [{}, {}, {}, {}]}
    metrics.count_frame(frame)
    after = (
        value("amiwatch_ingest_frames_emitted_total", closed_by="late"),
        value("amiwatch_ingest_late_readings_total"),
        value("amiwatch_ingest_duplicates_dropped_total"),
        value("amiwatch_ingest_conflicts_total"),
    )
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 3, 2, 4]
