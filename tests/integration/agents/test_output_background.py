"""An output that hands its record batches to the producer in the background
(``Output(producer, background=True)``, the stateful agent's): ``flush`` returns before they are
sent, yet every partition's records reach the broker in the order they were appended, across
flushes, and each future says how its batch went — against the real broker."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from agents.sink import Output
from app.broker import EmbeddedBroker
from tests.support.kafka import create_topic, read_all, unique

pytestmark = [pytest.mark.broker]


async def test_batches_sent_in_the_background_keep_their_order(broker: EmbeddedBroker) -> None:
    topic = await create_topic(broker.url, unique("background"), partitions=2)
    # Small batches: each flush holds several per partition, the case where aiokafka makes the
    # second wait for the first one's request.
    producer = AIOKafkaProducer(bootstrap_servers=broker.url, acks="all", max_batch_size=1024)
    await producer.start()
    try:
        out = Output(producer, background=True)
        await out.prepare([topic])
        sent: dict[int, list[bytes]] = {0: [], 1: []}
        futures: list[asyncio.Future[object]] = []
        for flush in range(4):
            for i in range(60):
                value = f"f{flush}-r{i:02d}-".encode() * 4
                p = i % 2
                if i % 3:
                    out.append(topic, b"k", value, partition=p)
                else:
                    add = out.appender(topic, p)
                    add(b"k", value)
                sent[p].append(value)
            got = await out.flush()  # no wait for the broker: the next flush follows at once
            assert len(got) >= 4  # ~50 bytes a record: several 1 kB batches per partition
            futures += got
        assert not all(f.done() for f in futures)
        await asyncio.wait_for(asyncio.gather(*futures), 30)
    finally:
        await producer.stop()
    records = await read_all(broker.url, topic, timeout=30)
    for p in (0, 1):
        mine = [r for r in records if r.partition == p]
        assert [r.value for r in mine] == sent[p]
        assert [r.offset for r in mine] == list(range(len(sent[p])))


async def test_a_batch_the_producer_refuses_fails_its_future(broker: EmbeddedBroker) -> None:
    topic = await create_topic(broker.url, unique("background-closed"), partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=broker.url, acks="all")
    await producer.start()
    out = Output(producer, background=True)
    await out.prepare([topic])
    await producer.stop()
    out.append(topic, b"k", b"v", partition=0)
    (future,) = await out.flush()
    with pytest.raises(KafkaError):
        await asyncio.wait_for(future, 30)
