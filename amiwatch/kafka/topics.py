"""The project's topics: created on purpose with their partition count and config.

The broker never creates topics by itself (``auto.create.topics.enable=false``
on the local broker), because an implicitly created topic gets the broker's
default partition count and no compaction: frames and the detector's tables
must be co-partitioned, and archives and checkpoints must be compacted.
So every topic of :meth:`Topics.all` is created here, by ``amiwatch topics
create`` or ``amiwatch up`` or a test, before anything uses it.
"""

from __future__ import annotations

import argparse
from contextlib import closing

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient
from kafka.errors import TopicAlreadyExistsError, for_code

from amiwatch.settings import Topics, load_settings

__all__ = ["ensure_topics", "describe_topics", "register"]


def _admin(bootstrap_servers: str) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="amiwatch-topics")


def ensure_topics(bootstrap_servers: str, topics: Topics, partitions: int) -> list[str]:
    """Create each missing topic of ``topics.all()``; return the names created.

    Idempotent and safe to race: a topic that exists already (or that
    another process creates meanwhile) is left as it is. Returns once every
    topic has a leader for each partition, so the caller can use them at once.
    Replication is the cluster's default (1 on the local broker).
    """
    wanted = topics.all()
    with closing(_admin(bootstrap_servers)) as admin:
        existing = set(admin.list_topics())
        missing = {
            name: {"num_partitions": partitions, "configs": config}
            for name, config in wanted.items()
            if name not in existing
        }
        created: list[str] = []
        if missing:
            response = admin.create_topics(missing, raise_errors=False)
            for result in response["topics"]:
                error = for_code(result["error_code"])
                if result["error_code"] == 0:
                    created.append(result["name"])
                elif error is not TopicAlreadyExistsError:
                    raise error(f"cannot create topic {result['name']}: {result['error_message']}")
        admin.wait_for_topics(list(wanted))
    return sorted(created)


def describe_topics(bootstrap_servers: str) -> dict[str, tuple[int, str]]:
    """Every non-internal topic of the cluster: name -> (partitions, cleanup.policy)."""
    with closing(_admin(bootstrap_servers)) as admin:
        names = sorted(name for name in admin.list_topics() if not name.startswith("__"))
        if not names:
            return {}
        partitions = {t["name"]: len(t["partitions"]) for t in admin.describe_topics(names)}
        resources = [ConfigResource(ConfigResourceType.TOPIC, name, ["cleanup.policy"]) for name in names]
        configs = admin.describe_configs(resources, config_filter="all")["topic"]
    return {name: (partitions[name], configs[name]["cleanup.policy"]["value"]) for name in names}


def _create(args: argparse.Namespace) -> int:
    settings = load_settings()
    partitions = args.partitions or settings.partitions
    created = ensure_topics(settings.bootstrap_servers, settings.topics, partitions)
    for name in created:
        print(f"created {name} ({partitions} partitions)")
    existing = len(settings.topics.all()) - len(created)
    if existing:
        print(f"{existing} topic(s) already existed at {settings.bootstrap_servers}")
    return 0


def _list(args: argparse.Namespace) -> int:
    for name, (partitions, policy) in describe_topics(load_settings().bootstrap_servers).items():
        print(f"{name}\t{partitions}\t{policy}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``amiwatch topics create|list``."""
    parser = subparsers.add_parser("topics", help="create or list the Kafka topics")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create the project's topics that are missing")
    create.add_argument("--partitions", type=int, help="partitions per new topic (default: AMIWATCH_PARTITIONS, 8)")
    create.set_defaults(func=_create)
    listing = actions.add_parser("list", help="list topics: name, partitions, cleanup.policy")
    listing.set_defaults(func=_list)
