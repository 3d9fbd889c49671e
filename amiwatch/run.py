"""``amiwatch up``: the whole product on one machine, with one command.

Starts the local Kafka broker (unless ``KAFKA_BOOTSTRAP_SERVERS`` names a
cluster), creates the topics, starts every service that is built (ingest,
detector, API) as child processes, then feeds them the simulator's demo
scenario. It prints what runs where and, on Ctrl-C (or when ``--until-done``
sees the simulator finish and the services go idle), stops the children in
reverse order with SIGTERM so each one commits what it holds, and stops the
broker if it started it.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from amiwatch.kafka.local_broker import broker_running, start_local_broker, stop_local_broker
from amiwatch.kafka.topics import ensure_topics
from amiwatch.settings import Settings, load_settings

__all__ = ["register", "up"]


@dataclass(slots=True)
class Child:
    """A service process started by ``up``."""

    name: str
    argv: list[str]
    url: str
    process: subprocess.Popen[bytes] | None = None


def _available(module: str) -> bool:
    """A service is started only once its package exists in this checkout."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _services(settings: Settings, idle: float | None) -> list[Child]:
    amiwatch = [sys.executable, "-m", "amiwatch.cli"]
    idle_args = ["--exit-when-idle", str(idle)] if idle else []
    children = [
        Child(
            "ingest",
            [*amiwatch, "ingest", *idle_args],
            f"metrics http://127.0.0.1:{settings.ingest_metrics_port}/metrics",
        )
    ]
    if _available("services.detector.cli") and _available("services.detector.app"):
        children.append(
            Child(
                "detector",
                [*amiwatch, "detect", *idle_args],
                f"metrics http://127.0.0.1:{settings.detector_metrics_port}/metrics",
            )
        )
    if _available("services.api.cli") and _available("services.api.app"):
        base = f"http://{settings.api_host}:{settings.api_port}"
        children.append(
            Child(
                "api",
                [*amiwatch, "api", "serve"],
                f"API {base}/api/v1  docs {base}/docs  metrics {base}/metrics",
            )
        )
    return children


def _stop(children: list[Child], timeout: float = 30.0) -> None:
    """SIGTERM in reverse start order, then SIGKILL whatever is still alive."""
    for child in reversed(children):
        if child.process and child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in reversed(children):
        if not child.process:
            continue
        try:
            child.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait()


def up(args: argparse.Namespace) -> int:
    settings = load_settings()
    # A broker that was already running (a developer's, or another `up`) is left running.
    owns_broker = not settings.external_kafka and not broker_running(settings)
    bootstrap = start_local_broker(settings)
    created = ensure_topics(bootstrap, settings.topics, settings.partitions)
    print(f"kafka      {bootstrap}  ({'external' if settings.external_kafka else 'local KRaft broker'})")
    print(f"topics     {len(settings.topics.all())} ready, {len(created)} created, {settings.partitions} partitions")

    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    children = _services(settings, args.idle if args.until_done else None)
    simulator = Child(
        "simulator",
        [
            sys.executable, "-m", "amiwatch.cli", "simulate",
            "--scenario", args.scenario, "--speed", str(args.speed), "--seed", str(args.seed),
            "--labels", str(settings.state_dir / "labels.jsonl"),
            "--summary", str(settings.state_dir / "simulation-summary.json"),
        ],
        f"scenario {args.scenario} at {args.speed}x real time",
    )
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill <pid>` cleans up as Ctrl-C does
    try:
        for child in [*children, simulator]:
            child.process = subprocess.Popen(child.argv, env=env)
            print(f"{child.name:<10} pid {child.process.pid:<7} {child.url}")
        print("Ctrl-C (or SIGTERM) stops everything.", flush=True)
        while True:
            time.sleep(0.5)
            failed = [c for c in children if c.process and c.process.poll() not in (None, 0)]
            if failed:
                print(f"{failed[0].name} exited with {failed[0].process.returncode}; stopping", file=sys.stderr)
                return 1
            if args.until_done and simulator.process.poll() is not None:
                if simulator.process.returncode != 0:
                    return simulator.process.returncode
                for child in children:
                    if child.name != "api":
                        child.process.wait()
                return 0
    except KeyboardInterrupt:
        print("\nstopping…", file=sys.stderr)
        return 0
    finally:
        _stop([*children, simulator])
        if owns_broker:
            stop_local_broker(settings)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "up", help="start Kafka, topics, every service and the simulator's demo scenario"
    )
    parser.add_argument("--scenario", default="demo", help="simulator scenario (default: demo)")
    parser.add_argument(
        "--speed", type=float, default=900.0,
        help="simulated time per wall-clock time (900: one 15-minute interval per second; 0: as fast as possible)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--until-done", action="store_true",
        help="stop once the simulator has finished and the services have been idle for --idle seconds",
    )
    parser.add_argument("--idle", type=float, default=10.0, help="idle seconds for --until-done")
    parser.set_defaults(func=up)
