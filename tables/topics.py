"""Creating topics explicitly, with the partition counts and configs we need.

An auto-created topic gets the broker's default partition count, which is rarely what a table or
a co-partitioned join wants, so everything tablestream reads or writes is created here first.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int = 1
    replication: int = 1
    configs: Mapping[str, str] = field(default_factory=dict)


async def existing_topics(bootstrap_servers: str) -> dict[str, int]:
    """Topic name -> partition count, as the broker reports them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        names = await admin.list_topics()
        if not names:
            return {}
        described = await admin.describe_topics(list(names))
        return {d["topic"]: len(d["partitions"]) for d in described if d["error_code"] == 0}
    finally:
        await admin.close()


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    """The partitions of ``topic`` by a fresh metadata request; empty when it does not exist.

    Not ``await consumer.topics()`` then ``partitions_for_topic()``: ``topics()`` fetches every
    topic's metadata but throws it away, and the consumer's own metadata lists only the topics it
    follows (Tansu happened to list them all; Apache Kafka does not).
    """
    cluster = await consumer._client.fetch_all_metadata()
    return set(cluster.partitions_for_topic(topic) or ())


#: Kafka's default ``delete.retention.ms`` (one day), assumed when the broker does not say.
DEFAULT_DELETE_RETENTION_MS = 86_400_000


async def tombstone_retention_ms(bootstrap_servers: str, topic: str) -> int | None:
    """How long a compacted topic keeps a tombstone once cleaned (``delete.retention.ms``).

    None for a topic without compaction (its tombstones are never cleaned away on their own).
    A broker that does not answer DescribeConfigs (Tansu, which never compacts) gets Kafka's
    default.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    try:
        await admin.start()
        wanted = {"cleanup.policy": None, "delete.retention.ms": None}
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, wanted)]
        )
        entries = {
            e[0]: e[1] for r in responses for res in r.resources if res[0] == 0 for e in res[4]
        }
    except (KafkaError, OSError) as exc:
        logger.debug("no topic configs for %r (%s): assuming the defaults", topic, exc)
        return DEFAULT_DELETE_RETENTION_MS
    finally:
        await admin.close()
    if "compact" not in str(entries.get("cleanup.policy", "compact")):
        return None
    return int(entries.get("delete.retention.ms") or DEFAULT_DELETE_RETENTION_MS)


async def ensure_topics(bootstrap_servers: str, topics: Sequence[TopicSpec]) -> list[str]:
    """Create the topics that do not exist yet; returns the names created."""
    if not topics:
        return []
    existing = await existing_topics(bootstrap_servers)
    missing = [t for t in topics if t.name not in existing]
    for t in topics:
        if t.name in existing and existing[t.name] != t.partitions:
            logger.info(
                "topic %r exists with %d partitions (wanted %d); using it as it is",
                t.name,
                existing[t.name],
                t.partitions,
            )
    if not missing:
        return []
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        new = [
            NewTopic(t.name, t.partitions, t.replication, topic_configs=dict(t.configs))
            for t in missing
        ]
        # Another worker may create it between our look and our create.
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics(new)
    finally:
        await admin.close()
    logger.info("created topics: %s", ", ".join(t.name for t in missing))
    return [t.name for t in missing]
