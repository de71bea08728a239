"""A task's producer replaced mid-run (a record batch of its transaction rejected: its sequence
numbers are off) while the broker is away: the new producer's start is tried again until the
broker — restarted on the same log directories — is back, and each try is logged as the renewal
it is, naming the broker and the task (it was logged as "start-up:", as if the worker were
starting). On an Apache Kafka broker of the test's own, stopped by the renewal's own call (the
old producer's stop); everything else is real."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from agents import transaction
from agents.transaction import Transactions
from agents.transaction_producer import stop_producer
from app.broker import Broker
from core.retry import StartupRetry
from tables.topics import TopicSpec, ensure_topics
from tests.support.kafka import unique

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.kafka_only]


async def test_a_renewed_producer_s_retries_say_renewal_naming_broker_and_task(
    fresh_broker: Broker, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker, url = fresh_broker, fresh_broker.url
    source, sink, group = unique("src"), unique("sink"), unique("group")
    small = TopicSpec(sink, 1, configs={"max.message.bytes": "1024"})
    await ensure_topics(url, [TopicSpec(source, 1), small])
    tp = TopicPartition(source, 0)
    txns = Transactions(
        "q",
        servers=url,
        id_prefix=group,
        group_id=group,
        topics=[sink],
        client_id="t",
        retry=StartupRetry(url),
    )
    caplog.set_level(logging.INFO, logger="core.retry")
    await txns.start([tp])

    async def broker_lost_then_stop(producer: AIOKafkaProducer) -> None:
        await asyncio.to_thread(broker.stop)  # gone as the broken producer is replaced
        await stop_producer(producer)

    try:
        out = await txns.begin(tp)
        assert out is not None
        out.append(sink, b"k", b"x" * 4096, partition=0)  # MessageSizeTooLarge at the commit
        assert await txns.sent(tp, 1)
        monkeypatch.setattr(transaction, "stop_producer", broker_lost_then_stop)
        commit = asyncio.ensure_future(txns.commit(everything=True))
        task = f"{group}-0' of query q's task {source}[0]"
        retry = f"producer renewal: start the transactional producer '{task} failed: broker {url}"
        deadline = time.monotonic() + 60
        while not any(m.startswith(retry) for m in caplog.messages):
            assert not commit.done(), commit
            assert time.monotonic() < deadline, caplog.messages
            await asyncio.sleep(0.1)
        monkeypatch.undo()
        await asyncio.to_thread(broker.start)  # same ports, same log directories
        failed = await asyncio.wait_for(commit, 90)
        assert (failed.aborted, failed.fenced) == ([tp], [])  # to re-read, on a new producer
        done = f"producer renewal: start the transactional producer '{task} done after"
        assert any(m.startswith(done) for m in caplog.messages), caplog.messages
        assert not any(m.startswith("start-up: start the transactional") for m in caplog.messages)
        out = await txns.begin(tp)  # the new producer works
        assert out is not None
        out.append(sink, b"k", b"again", partition=0)
        assert await txns.sent(tp, 1)
        assert not await txns.commit(everything=True)
    finally:
        await txns.close()
