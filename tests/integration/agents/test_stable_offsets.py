"""The group's committed offsets on Apache Kafka: read once the transaction that sent them ended
(agents.stable_offsets; one that stays open past the timeout fails naming the group, the
partitions still unsettled and the timeout); a commit refused is logged naming its offsets."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from agents import stable_offsets
from agents.delivery import Delivery, Inflight
from agents.metrics import QueryStats
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


async def test_a_failed_offset_commit_is_logged_naming_the_offsets(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    """A query's group commit refused (here: made from outside the group's current members, as a
    worker whose session expired): logged with the query, the partitions and offsets."""
    topic, group = unique("commit"), unique("group")
    await ensure_topics(broker.url, [TopicSpec(topic, 2)])
    member = AIOKafkaConsumer(topic, bootstrap_servers=broker.url, group_id=group)
    outsider = AIOKafkaConsumer(
        bootstrap_servers=broker.url, group_id=group, enable_auto_commit=False
    )
    await member.start()
    await outsider.start()
    delivery = Delivery("q", QueryStats("q", topic, "out", "stateless"), 4, crash)
    runner = asyncio.create_task(delivery.run(lambda: False))
    try:
        deadline = time.monotonic() + 30
        while not member.assignment():
            assert time.monotonic() < deadline, "the member got no partitions"
            await member.getmany(timeout_ms=200)
        tps = [TopicPartition(topic, 1), TopicPartition(topic, 0)]
        outsider.assign(tps)
        delivery.consumer = outsider
        with caplog.at_level(logging.WARNING, logger="agents.delivery"):
            await delivery.put(Inflight([], {tps[0]: 9, tps[1]: 4}, [], time.monotonic()))
            await asyncio.wait_for(delivery.drain(), 30)
        [logged] = [r.getMessage() for r in caplog.records if "offset commit" in r.getMessage()]
        assert logged.startswith(
            f"query 'q': offset commit of {topic}[0]@4, {topic}[1]@9 failed (CommitFailedError: "
        )
        assert "CommitFailedError: CommitFailedError" not in logged  # its name once
        assert logged.endswith("); records before it may be read again")
    finally:
        runner.cancel()
        await outsider.stop()
        await member.stop()


async def crash(exc: BaseException) -> None:
    raise AssertionError(f"the delivery failed: {exc!r}")
