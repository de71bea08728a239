"""The agents' raw fetch returns what ``getmany`` returns — same records, same positions — on
the real broker, including a fetch that starts inside a record batch and a small max_records."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from app.broker import Broker
from core.fetch import getmany_raw, supported
from tests.support.kafka import create_topic, unique

Seen = list[tuple[int, int, bytes | None, bytes | None, int]]


async def _read(servers: str, topic: str, start: int, raw: bool, max_records: int) -> Seen:
    consumer = AIOKafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False)
    await consumer.start()
    try:
        assert supported(consumer)
        tps = [TopicPartition(topic, p) for p in (0, 1)]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, start)  # inside the first record batch of each partition
        seen: Seen = []
        empty = 0
        while empty < 3:
            got: dict[TopicPartition, list[Any]] = (
                await getmany_raw(consumer, 500, max_records)
                if raw
                else await consumer.getmany(timeout_ms=500, max_records=max_records)
            )
            empty = 0 if got else empty + 1
            for tp, recs in got.items():
                seen += [(tp.partition, r.offset, r.key, r.value, r.timestamp) for r in recs]
                # The consumer's position follows what was returned, as getmany's does.
                assert await consumer.position(tp) == recs[-1].offset + 1
        positions = [await consumer.position(tp) for tp in tps]
        assert positions == [1000, 1000]
        return sorted(seen)
    finally:
        await consumer.stop()


async def test_raw_fetch_matches_getmany(broker: Broker) -> None:
    topic = await create_topic(broker.url, unique("fetch"), partitions=2)
    messages = [
        (f"k{i % 7}".encode(), None if i % 97 == 0 else f'{{"i": {i}}}'.encode())
        for i in range(2000)
    ]
    # 1000 records per partition, in a few large record batches (a long linger).
    producer = AIOKafkaProducer(bootstrap_servers=broker.url, linger_ms=50)
    await producer.start()
    try:
        sent = [
            await producer.send(topic, v, k, partition=i % 2) for i, (k, v) in enumerate(messages)
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    plain = await _read(broker.url, topic, 17, raw=False, max_records=10_000)
    raw = await _read(broker.url, topic, 17, raw=True, max_records=10_000)
    small = await _read(broker.url, topic, 17, raw=True, max_records=50)
    assert len(plain) == 2 * (1000 - 17)
    assert raw == plain
    assert small == plain
