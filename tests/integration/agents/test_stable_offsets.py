"""agents.stable_offsets on Apache Kafka: the group's committed offsets are read once the
transaction that sent them ended; one that stays open past the timeout fails naming the group,
the partitions still unsettled and the timeout."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from agents import stable_offsets
from agents.stable_offsets import stable_committed
from app.broker import Broker
from tables.topics import TopicSpec, ensure_topics
from tests.support.kafka import unique

pytestmark = [pytest.mark.broker, pytest.mark.kafka_only]


async def test_offsets_of_an_open_transaction_wait_then_fail_naming_them(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic, group = unique("settle"), unique("group")
    await ensure_topics(broker.url, [TopicSpec(topic, 2)])
    settled, open_ = TopicPartition(topic, 0), TopicPartition(topic, 1)
    producer = AIOKafkaProducer(bootstrap_servers=broker.url, transactional_id=unique("txn"))
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.url, enable_auto_commit=False)
    await producer.start()
    await consumer.start()
    try:
        await producer.begin_transaction()
        await producer.send_offsets_to_transaction({settled: 5}, group)
        await producer.commit_transaction()
        assert await stable_committed(consumer, group, [settled, open_]) == {
            settled: 5,
            open_: None,
        }
        await producer.begin_transaction()
        await producer.send_offsets_to_transaction({open_: 9}, group)  # left open
        monkeypatch.setattr(stable_offsets, "SETTLE_TIMEOUT_S", 0.5)
        with pytest.raises(TimeoutError) as caught:
            await stable_committed(consumer, group, [settled, open_])
        assert str(caught.value) == (
            f"the committed offsets of group {group} did not settle within 0.5 s: "
            f"{topic}[1] still in an open transaction"
        )
        await producer.abort_transaction()
        assert await stable_committed(consumer, group, [open_]) == {open_: None}
    finally:
        await consumer.stop()
        await producer.stop()
