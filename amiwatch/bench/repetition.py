"""One repetition of the bench: every phase of :mod:`amiwatch.bench`, each figure measured once.

Topic prefixes are ``<run id>r<n><phase>.`` (``a``: bare consumer, ingest
and detector alone; ``b``: pipeline; ``c``: latency), created fresh and,
unless ``keep_topics``, deleted at the end. Every service's log and the
API's SQLite file are under ``<run dir>/r<n>/<phase>/``.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka.admin import KafkaAdminClient

from amiwatch.bench import changelog
from amiwatch.bench.bare import __name__ as BARE_MODULE
from amiwatch.bench.fleet import FleetSpec, Loaded, end_offsets, load_fleet, record_count, simulate_argv
from amiwatch.bench.latency import ApiPoller, alert_index, arrival_index, frame_index, latencies, percentiles, stages
from amiwatch.bench.procs import BenchError, ServiceEnv
from amiwatch.bench.progress import Progress, note
from amiwatch.bench.rss import PeakRss
from amiwatch.bench.services import Stack
from amiwatch.bench.watch import watch, sustained_rate
from amiwatch.kafka.topics import ensure_topics
from amiwatch.settings import Topics
from services.detector.checkpoint import unpack_state

__all__ = ["BenchConfig", "run_repetition"]


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """Everything a repetition needs."""

    spec: FleetSpec
    bootstrap: str
    partitions: int
    run_id: str
    run_dir: Path
    latency_seconds: float = 60.0
    latency_load: float = 0.5  # share of the pipeline's sustained rate offered in the latency phase
    timeout_s: float = 1800.0
    progress: bool = True
    keep_topics: bool = False


def _env(config: BenchConfig, rep: int, phase: str) -> ServiceEnv:
    env = ServiceEnv(config.bootstrap, f"{config.run_id}r{rep}{phase}.", config.partitions,
                     config.run_dir / f"r{rep}" / phase)
    ensure_topics(config.bootstrap, Topics(env.prefix), config.partitions)
    return env


def _progress(config: BenchConfig, label: str, totals: dict[str, float | None]) -> Progress:
    return Progress(label, totals, enabled=config.progress)


# -- phase a: bare consumer, ingest alone, detector alone ------------------------------------


def bare_consumer(config: BenchConfig, env: ServiceEnv) -> dict[str, Any]:
    """Drain the raw topic with :mod:`amiwatch.bench.bare` in a subprocess of its own."""
    note("  bare aiokafka consumer draining the raw topic")
    argv = [sys.executable, "-m", BARE_MODULE, "--topic", Topics(env.prefix).raw, "--partitions", str(env.partitions)]
    process = subprocess.Popen(argv, env=env.environ(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    rss = PeakRss(process.pid)
    while process.poll() is None:
        rss.sample()
        time.sleep(0.1)
    out, err = process.communicate()
    if process.returncode != 0:
        raise BenchError(f"bare consumer exited with {process.returncode}:\n{err.decode()[-2000:]}")
    result = json.loads(out)
    return {**result, "peak_rss_bytes": rss.bytes}


def ingest_alone(config: BenchConfig, env: ServiceEnv, loaded: Loaded) -> dict[str, Any]:
    note("  ingest alone: raw → frames")
    with Stack(env) as stack:
        service = stack.start_ingest()
        progress = _progress(config, "ingest", {"messages": loaded.raw_records, "readings": None})
        seen = watch(stack.sample, lambda v: v["messages"] >= loaded.raw_records, [service], progress,
                     timeout=config.timeout_s)
        progress.close()
        last = seen[-1].values
        rate = sustained_rate(seen, "readings")
        service.stop()
        return {"readings_per_s": rate["per_s"], "seconds": rate["seconds"], "readings": last["readings"],
                "messages": last["messages"], "frames": last["frames_out"], "peak_rss_bytes": service.peak_rss}


def detector_alone(config: BenchConfig, env: ServiceEnv, ingest: dict[str, Any]) -> dict[str, Any]:
    note("  detector alone: frames → alerts, state")
    frames = ingest["frames"]
    readings_per_frame = ingest["readings"] / frames if frames else 0.0
    with Stack(env) as stack:
        service = stack.start_detector()
        progress = _progress(config, "detector", {"frames_in": frames})
        seen = watch(stack.sample, lambda v: v["frames_in"] >= frames, [service], progress, timeout=config.timeout_s)
        progress.close()
        rate = sustained_rate(seen, "frames_in", scale=readings_per_frame)
        service.stop()
        return {"readings_per_s": rate["per_s"], "frames_per_s": rate["per_s"] / readings_per_frame,
                "seconds": rate["seconds"], "frames": seen[-1].values["frames_in"],
                "readings_per_frame": readings_per_frame, "peak_rss_bytes": service.peak_rss}


def state_cost(env: ServiceEnv, spec: FleetSpec, readings: float) -> dict[str, Any]:
    """State bytes per meter and changelog bytes per reading, from the detector's changelogs."""
    note("  reading the detector's changelogs")
    topics = changelog.changelog_topics(Topics(env.prefix))
    decoders = {"area_state": lambda record: unpack_state(record)[1]}
    counted = {table: changelog.topic_bytes(env.bootstrap, topic, decode=decoders.get(table))
               for table, topic in topics.items()}
    on_disk = changelog.log_dir_bytes(env.bootstrap, list(topics.values()))
    state = counted["area_state"]
    written = sum(c.record_bytes for c in counted.values())
    disk = sum(on_disk.values())
    return {
        "state_bytes_per_meter": state.latest_decoded_bytes / spec.meters,
        "state_record_bytes_per_meter": state.latest_bytes / spec.meters,
        "changelog_bytes_per_reading": written / readings,
        "changelog_disk_bytes_per_reading": disk / readings,
        "area_state_changelog_bytes_per_reading": state.record_bytes / readings,
        "area_state_changelog_disk_bytes_per_reading": on_disk[topics["area_state"]] / readings,
        "tables": {
            table: {"records": c.records, "record_bytes": c.record_bytes, "keys": c.keys,
                    "latest_bytes": c.latest_bytes, "disk_bytes": on_disk[topics[table]]}
            for table, c in counted.items()
        },
    }


# -- phase b: the whole pipeline ---------------------------------------------------------------


def _pipeline_done(raw_records: int) -> Any:
    def done(v: dict[str, float]) -> bool:
        return (
            v["messages"] >= raw_records
            and v["frames_in"] >= v["frames_out"]
            and v["sink_records"] >= v["alert_records"]
        )

    return done


def pipeline(config: BenchConfig, env: ServiceEnv, loaded: Loaded) -> dict[str, Any]:
    note("  pipeline: API and detector up, then ingest; raw → alerts in the API's store")
    with Stack(env) as stack:
        api, _ = stack.start_api()
        detector = stack.start_detector()
        stack.wait_api()
        stack.wait_ready("detector")
        ingest = stack.start_ingest()
        progress = _progress(config, "pipeline", {"messages": loaded.raw_records, "frames_in": None, "sink_records": None})
        seen = watch(stack.sample, _pipeline_done(loaded.raw_records), [api, detector, ingest], progress,
                     timeout=config.timeout_s)
        progress.close()
        rate = sustained_rate(seen, "readings")
        last = seen[-1].values
        stack.stop()
        return {"readings_per_s": rate["per_s"], "seconds": rate["seconds"], "readings": last["readings"],
                "frames": last["frames_out"], "alert_records": last["alert_records"],
                "peak_rss_bytes": stack.peak_rss()}


# -- phase c: alert latency at part load -------------------------------------------------------


def latency(config: BenchConfig, env: ServiceEnv, readings_per_interval: float, rate: float) -> dict[str, Any]:
    """Stream the fleet at ``latency_load`` × ``rate`` into a running pipeline, poll the API, measure."""
    spec = config.spec
    target = config.latency_load * rate
    interval_s = spec.interval_minutes * 60
    speed = target * interval_s / readings_per_interval
    per_day = readings_per_interval * 86_400 / interval_s
    days = max(1, min(spec.days, math.ceil(config.latency_seconds * target / per_day)))
    note(f"  latency: {target:,.0f} readings/s offered ({config.latency_load:g} × pipeline) for "
         f"≤ {config.latency_seconds:g} s, API polled")
    topics = Topics(env.prefix)
    raw = topics.raw
    with Stack(env) as stack:
        api, token = stack.start_api()
        detector = stack.start_detector()
        ingest = stack.start_ingest()  # nothing to read yet: all three start together
        stack.wait_api()
        stack.wait_ready("detector")
        stack.wait_ready("ingest")
        start = {topic: end_offsets(env.bootstrap, topic) for topic in (raw, topics.frames, topics.alerts)}
        poller = ApiPoller(env.api_base, token).start()
        summary_path = env.state_dir / "latency-summary.json"
        with open(env.state_dir / "simulate.log", "ab") as log:
            # SIGINT ends the simulator below; a bench started in the background of a shell has SIGINT
            # ignored, and a child inherits that, so the child gets the default back first.
            simulator = subprocess.Popen(simulate_argv(spec, str(summary_path), days=days, speed=speed),
                                         env=env.environ(), stdout=log, stderr=log,
                                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        progress = _progress(config, "latency", {"readings": None, "sink_records": None})
        began: float | None = None  # the first reading ingested: the simulator has started sending
        deadline = time.monotonic() + 120
        try:
            while simulator.poll() is None:
                for service in (api, detector, ingest):
                    service.sample()
                values = stack.sample()
                now = time.monotonic()
                if values:
                    progress.update(values)
                    if began is None and values["readings"] > 0:
                        began = now
                if began is None and now > deadline:
                    raise BenchError(f"latency: no reading ingested 120 s after the simulator started; "
                                     f"see {env.state_dir / 'simulate.log'}")
                if began is not None and now - began >= config.latency_seconds:
                    break
                time.sleep(0.25)
        finally:
            if simulator.poll() is None:
                simulator.send_signal(signal.SIGINT)  # the simulator flushes what it sent, then exits
            try:
                simulator.wait(timeout=60)
            except subprocess.TimeoutExpired:
                note("  latency: the simulator did not stop within 60 s of SIGINT; killed (what it sent is counted)")
                simulator.kill()
                simulator.wait()
        began = began or time.monotonic()
        streamed = time.monotonic() - began
        raw_records = record_count(env.bootstrap, raw)
        seen = watch(stack.sample, _pipeline_done(raw_records), [api, detector, ingest], progress, timeout=300)
        progress.close()
        poller.stop()
        poller.poll_once()  # whatever became readable after the thread's last poll
        readings = seen[-1].values["readings"]
        stack.stop()
    index = arrival_index(env.bootstrap, raw, start[raw])
    by_type = latencies(poller.first_seen, index)
    by_stage = stages(poller.first_seen, index, frame_index(env.bootstrap, topics.frames, start[topics.frames]),
                      alert_index(env.bootstrap, topics.alerts, start[topics.alerts]))
    return {
        **percentiles([s for samples in by_type.values() for s in samples]),
        # Rules judged at a day's close (the open day closes a grace period after midnight) wait for that
        # much more data, which the simulator sends thousands of times faster than real time.
        "by_type": {kind: percentiles(samples) for kind, samples in sorted(by_type.items())},
        "stages": {stage: percentiles(samples) for stage, samples in by_stage.items()},
        "offered_readings_per_s": readings / streamed,
        "target_readings_per_s": target,
        "streamed_s": streamed,
        "simulator_speed": speed,
        "alerts_readable": len(poller.first_seen),
        "api_polls": poller.polls,
        "api_poll_errors": poller.errors,
    }


# -- one repetition ------------------------------------------------------------------------------


class _Clock:
    """Wall time of each phase, start-ups included (where a run's time goes)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.monotonic()

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps[name] = round(now - self._last, 1)
        self._last = now


def _delete_topics(bootstrap: str, prefixes: list[str]) -> None:
    with closing(KafkaAdminClient(bootstrap_servers=bootstrap, client_id="amiwatch-bench-cleanup")) as admin:
        names = [t for t in admin.list_topics() if any(t.startswith(p) for p in prefixes)]
        if names:
            admin.delete_topics(names)


def run_repetition(config: BenchConfig, rep: int) -> dict[str, Any]:
    """Every phase once; returns the figures (see :mod:`amiwatch.bench.report` for their names)."""
    spec = config.spec
    envs: list[ServiceEnv] = []
    clock = _Clock()
    try:
        a = _env(config, rep, "a")
        envs.append(a)
        note(f"repetition {rep + 1}: loading {spec.meters:,} meters × {spec.days} days into {a.prefix}*")
        loaded = load_fleet(spec, a)
        clock.lap("load")
        note(f"  loaded {loaded.raw_records:,} raw messages in {loaded.seconds:.1f} s")
        bare = bare_consumer(config, a)
        clock.lap("bare")
        ingest = ingest_alone(config, a, loaded)
        clock.lap("ingest")
        bare["readings_per_s"] = ingest["readings"] / bare["seconds"] if bare["seconds"] else float("nan")
        detector = detector_alone(config, a, ingest)
        clock.lap("detector")
        state = state_cost(a, spec, ingest["readings"])
        clock.lap("changelogs")

        b = _env(config, rep, "b")
        envs.append(b)
        note(f"  loading the same fleet into {b.prefix}*")
        loaded_b = load_fleet(spec, b)
        clock.lap("load_again")
        whole = pipeline(config, b, loaded_b)
        clock.lap("pipeline")

        c = _env(config, rep, "c")
        envs.append(c)
        intervals = spec.days * 86_400 // (spec.interval_minutes * 60)
        lat = latency(config, c, whole["readings"] / intervals, whole["readings_per_s"])
        clock.lap("latency")
    finally:
        if not config.keep_topics and envs:
            try:
                _delete_topics(config.bootstrap, [e.prefix for e in envs])
            except Exception as exc:  # cleanup must not hide the real error
                note(f"  could not delete this repetition's topics: {exc!r}")
    return {
        "load": {"raw_messages": loaded.raw_records, "readings": ingest["readings"], "seconds": loaded.seconds},
        "bare": bare,
        "ingest": ingest,
        "detector": detector,
        "state": state,
        "pipeline": {**whole, "bare_ratio": whole["readings_per_s"] / bare["readings_per_s"]},
        "latency": lat,
        "phase_wall_seconds": clock.laps,
    }
