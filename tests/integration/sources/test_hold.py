"""``on_error='wait'`` holds a batch while PostgreSQL is down — longer than the consumer's
``max.poll.interval.ms`` — without the consumer leaving its group (real broker, real
PostgreSQL stopped by its pid mid-run): the agent's hold (``agents.hold.while_polling``) pauses
the partitions and keeps polling; the held batch then gives every right output, the partitions
are resumed, and the next record read is the one after the batch. The control: the same hold
without polling makes aiokafka leave the group."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from agents.hold import while_polling
from app.broker import Broker
from core import codec
from tests.support.federation import outage_processor, outage_table
from tests.support.kafka import create_topic, produce, unique
from tests.support.postgres import PostgresCluster
from tests.support.records import Collect

#: On Kafka only: what is tested is the client's group membership (aiokafka's poll timer), and
#: Tansu's first group join alone took 18 s of the test's 41 there (Kafka: 17 s in all).
pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.kafka_only]
#: The consumer's max.poll.interval.ms; every hold below lasts more than twice as long.
MAX_POLL_MS = 1500
HOLD = 3.5


async def stop_by_pid(pg: PostgresCluster) -> None:
    """Fast shutdown by signalling the postmaster's pid; returns once it is gone (polling
    without blocking the event loop: the consumer's own heartbeats must go on)."""
    assert pg.pid is not None
    os.kill(pg.pid, signal.SIGINT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pg.pid, 0)
        except ProcessLookupError:
            pg.pid = None
            return
        await asyncio.sleep(0.05)
    raise AssertionError("PostgreSQL did not stop")


def order(i: int, customer: int) -> tuple[bytes, bytes]:
    return str(i).encode(), codec.dumps({"order_id": i, "customer_id": customer})


async def fetch(consumer: AIOKafkaConsumer, n: int) -> list[Any]:
    got: list[Any] = []
    deadline = time.monotonic() + 30
    while len(got) < n and time.monotonic() < deadline:
        for recs in (await consumer.getmany(timeout_ms=500)).values():
            got.extend(recs)
    assert len(got) == n
    return got


def outputs(p: Any, recs: list[Any]) -> list[Any]:
    out = Collect()
    p.run(recs, out)
    return [codec.loads(v) for t, _, v, _ in out.records if t == "out" and v is not None]


async def test_a_held_batch_keeps_the_consumer_in_its_group(
    broker: Broker, own_postgres: PostgresCluster
) -> None:
    servers = broker.url
    topic = await create_topic(servers, unique("hold"), partitions=1)
    await produce(servers, topic, [order(0, 1), order(1, 2), order(2, 3)])
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=servers,
        group_id=unique("hold-group"),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_interval_ms=MAX_POLL_MS,
        session_timeout_ms=10_000,
        heartbeat_interval_ms=300,
    )
    await consumer.start()
    table = outage_table(own_postgres, "wait")
    p = outage_processor(table, "wait")
    try:
        await stop_by_pid(own_postgres)  # (before the poll: the agent holds right after it)
        recs = await fetch(consumer, 3)
        tp = next(iter(consumer.assignment()))
        generation = consumer._coordinator.generation
        assert p.prefetch is not None
        held = asyncio.ensure_future(while_polling(consumer, p.prefetch({tp: recs}), 0.3))
        await asyncio.sleep(HOLD)
        assert not held.done()  # the batch is held: nothing of it ran
        assert consumer.paused() == {tp}
        assert consumer._coordinator.generation == generation  # never left nor rejoined
        await asyncio.to_thread(own_postgres.start)
        await asyncio.wait_for(held, 30)
        assert outputs(p, recs) == [
            {"order_id": 0, "tier": "gold"},
            {"order_id": 1, "tier": "basic"},
            {"order_id": 2, "tier": None},
        ]
        assert table.stats().as_dict()["waits"] > 0
        assert consumer.paused() == set()
        assert consumer._coordinator.generation == generation
        await produce(servers, topic, [order(3, 1)])
        (nxt,) = await fetch(consumer, 1)
        assert nxt.offset == 3  # the batch is not read again, nothing after it skipped

        # The control: the same hold without polling, and aiokafka leaves the group.
        await stop_by_pid(own_postgres)
        bare = asyncio.ensure_future(p.prefetch({tp: [nxt]}))
        await asyncio.sleep(HOLD)
        assert not bare.done()
        assert consumer._coordinator.generation != generation
        await asyncio.to_thread(own_postgres.start)
        await asyncio.wait_for(bare, 30)
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
        table.close_sync()
