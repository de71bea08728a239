"""A table loader reading several partitions keeps them within a bounded skew of each other
(tables/skew.py): one partition's backlog is never applied far ahead of another's, whatever order
the broker answers in (Tansu hands one partition's whole backlog at once)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from app.broker import Broker
from core import codec
from tables.protocol import Change
from tables.reference import ReferenceTable
from tables.spec import TableSpec
from tests.support.kafka import create_topic, unique

pytestmark = pytest.mark.broker

#: Two days ago: a broker refuses timestamps far in the future (Kafka's default: 1 h ahead).
BASE = (int(time.time()) // 86_400 - 2) * 86_400_000
STEP_MS = 1_000  # record timestamps 1 s apart within a partition
PER_PARTITION = 1_500
BATCH = 100  # records per loader batch
#: Bytes per producer batch (~60 of these records): a loader takes whole record batches (no
#: object per record, see core.fetch), so one batch may pass BATCH by up to one of them.
PRODUCER_BATCH_BYTES = 2048
RECORD_BATCH = 100
SKEW_MS = 10_000
#: A record applied early in a batch is checked against what the others applied before the
#: batch: the bound counts their whole batch, up to BATCH records (plus the rest of a record
#: batch) of STEP_MS each.
SLACK_MS = SKEW_MS + (BATCH + RECORD_BATCH) * STEP_MS


async def produce_backlogs(servers: str, topic: str) -> None:
    """Partition 0's whole backlog first, then partition 1's: the same span of timestamps."""
    producer = AIOKafkaProducer(
        bootstrap_servers=servers, linger_ms=50, acks="all", max_batch_size=PRODUCER_BATCH_BYTES
    )
    await producer.start()
    try:
        futures = []
        for p in (0, 1):
            for i in range(PER_PARTITION):
                ts = BASE + i * STEP_MS
                value = codec.dumps({"i": i})
                futures.append(
                    await producer.send(
                        topic, value=value, key=f"p{p}-{i}".encode(), partition=p, timestamp_ms=ts
                    )
                )
        for f in futures:
            await f
    finally:
        await producer.stop()


async def test_a_loader_keeps_its_partitions_within_the_skew(
    broker: Broker, tmp_path: Path
) -> None:
    topic = await create_topic(broker.url, unique("skewed"), partitions=2)
    await produce_backlogs(broker.url, topic)
    table = ReferenceTable(
        TableSpec("skewed", topic),
        tmp_path,
        broker.url,
        fetch_max_records=BATCH,
        max_skew_ms=SKEW_MS,
    )
    applied: dict[int, int] = {}  # partition -> largest timestamp applied so far
    worst = 0

    def check(change: Change) -> None:
        nonlocal worst
        p, ts = change.partition, change.timestamp
        applied[p] = max(applied.get(p, ts), ts)
        other = applied.get(1 - p, BASE - STEP_MS)
        if other < BASE + (PER_PARTITION - 1) * STEP_MS:  # the other still has records to read
            worst = max(worst, ts - other)

    table.subscribe(check)
    await table.start()
    try:
        assert await table.wait_until_ready(60), table.stats().as_dict()
        assert len(table) == 2 * PER_PARTITION  # records held back were read again, none lost
        assert worst <= SLACK_MS, f"a partition was applied {worst} ms ahead of the other"
    finally:
        await table.stop()
