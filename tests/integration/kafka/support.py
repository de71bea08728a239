"""Topics the broker compacts or truncates within seconds, and waits for it to have done so."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from tables.reference import ReferenceTable
from tables.spec import TableSpec
from tables.topics import TopicSpec, ensure_topics
from tests.support.kafka import produce, read_all

#: Segments roll every 100 ms (a segment is cleaned once it is not the active one), any dirt is
#: worth cleaning, and a tombstone is dropped 100 ms after its first cleaning.
COMPACTING = {
    "cleanup.policy": "compact",
    "segment.ms": "100",
    "min.cleanable.dirty.ratio": "0.01",
    "min.compaction.lag.ms": "0",
    "delete.retention.ms": "100",
}
FILLER = b"~filler"


async def compacting_topic(servers: str, name: str) -> str:
    await ensure_topics(servers, [TopicSpec(name, 1, configs=COMPACTING)])
    return name


async def until_cleaned(
    servers: str, topic: str, done: Callable[[list[Any]], bool], timeout: float = 90.0
) -> list[Any]:
    """Records of ``topic`` once ``done(records)``; a filler record now and then rolls the active
    segment, the only one the cleaner never touches, so the records before it can be cleaned."""
    deadline = time.monotonic() + timeout
    n = 0
    while True:
        records = await read_all(servers, topic)
        if done(records):
            return records
        assert time.monotonic() < deadline, f"{topic} not cleaned within {timeout}s"
        n += 1
        await asyncio.sleep(0.15)
        await produce(servers, topic, [(FILLER, f'{{"id": "~filler", "n": {n}}}'.encode())])


def without_filler(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in state.items() if k != FILLER.decode()}


async def load(spec: TableSpec, data_dir: Path, servers: str) -> ReferenceTable:
    table = ReferenceTable(spec, data_dir, servers)
    await table.start()
    assert await table.wait_until_ready(60), table.stats().as_dict()
    return table


async def delete_records(servers: str, topic: str, before: int, partition: int = 0) -> None:
    """Remove every record below offset ``before``: the log start offset moves up to it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        await admin.delete_records({TopicPartition(topic, partition): RecordsToDelete(before)})
    finally:
        await admin.close()
