"""Exactly-once through the agents' hooks, in process, on Apache Kafka: a batch fetched while
stage 2's assignment fences the new partitions' producers is emitted once; stage 1's watermark
markers skip a partition a rebalance took. Real broker, transactions and RocksDB; the hooks
called as aiokafka calls them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from agents.config import AgentConfig
from agents.repartition import RepartitionAgent
from agents.stateful_hooks import TaskHooks
from agents.transactional import mark_in_transactions, stateful_step
from agents.watermarks import Mark, mark_of
from app.broker import Broker
from core import codec
from core.fetch import getmany_raw
from tables.topics import TopicSpec, ensure_topics
from tests.support.eos import (
    SYMBOLS,
    no_tables,
    read_committed,
    stage2,
    takeover_query,
    write_stage1,
)

pytestmark = [pytest.mark.broker, pytest.mark.kafka_only]

BASE = 1_700_000_000_000


async def test_a_batch_fetched_while_partitions_are_fenced_is_emitted_once(
    broker: Broker, tmp_path: Path
) -> None:
    """Stage 2 keeps a task across a rebalance that brings it a new partition. While the new
    partition's producer fences its previous owner (InitProducerId: round trips with the lock
    held), the loop fetches the kept partition from its committed offset and waits for the lock
    with that batch. The batch must run after the tasks are sought, or not at all: run in
    between (the assignment hook used to let go of the lock before the tasks were sought), it
    moved the kept task past the committed offset in an open transaction, the assignment took
    the task for one ahead of what was committed, reset it and replayed it quietly only up to
    the committed offset — and its outputs were committed twice (the SIGKILL test's duplicate
    rows). Real broker, real transactions, real RocksDB; the hook called as aiokafka calls it."""
    kafka_url = broker.url
    s2 = await stage2(kafka_url, tmp_path, "takeover", partitions=2)
    agent, producer, names, repartition = s2.agent, s2.producer, s2.names, s2.repartition
    consumer = agent._consumer = agent._new_consumer()
    txns = agent.txns = agent._transactions()
    hook = TaskHooks(agent)
    kept, new = TopicPartition(repartition, 0), TopicPartition(repartition, 1)

    async def run_until(position: int) -> None:
        """The loop's steps until the kept task applied everything below ``position``."""
        deadline = time.monotonic() + 30
        while agent.tasks[0].position < position:
            assert time.monotonic() < deadline, f"stuck at {agent.tasks[0].position}"
            fetched = await getmany_raw(consumer, 200, 1000)
            await stateful_step(agent, txns, consumer, fetched)
        async with agent._lock:
            assert not await txns.commit(everything=True)

    await consumer.start()
    try:
        # Generation 1: this worker owns partition 0 and commits 40 records' outputs.
        consumer.assign([kept])
        await hook.on_partitions_assigned({kept})
        await write_stage1(producer, repartition, 0, 40)
        await run_until(40)
        # 20 more, then generation 2: partition 0 kept, partition 1 new. The fetch reads the
        # kept partition from its committed offset (40; aiokafka's own OffsetFetch may answer
        # it a moment late, the seek stands for it) before the hook runs.
        await write_stage1(producer, repartition, 40, 20)
        consumer.assign([kept, new])
        consumer.seek(kept, 40)
        fetched: dict[TopicPartition, Any] = {}
        deadline = time.monotonic() + 30
        while not fetched.get(kept):
            assert time.monotonic() < deadline, "the kept partition's records never came"
            fetched = await getmany_raw(consumer, 200, 1000)
        assert fetched[kept][0].offset == 40
        assigning = asyncio.create_task(hook.on_partitions_assigned({kept, new}))
        await asyncio.sleep(0)  # the hook holds the lock, fencing partition 1's producer
        assert agent._lock.locked()
        step = asyncio.create_task(stateful_step(agent, txns, consumer, fetched))
        await asyncio.gather(assigning, step)
        await run_until(60)
    finally:
        async with agent._lock:
            await txns.close()
        await consumer.stop()
        for task in agent.tasks.values():
            task.close()
        agent.builder.close()
        await producer.stop()

    rows = [codec.loads_exact(r.value) for r in await read_committed(kafka_url, names["volume"])]
    counts = {s: sorted(r["n"] for r in rows if r["symbol"] == s) for s in SYMBOLS}
    assert counts == {s: list(range(1, 31)) for s in SYMBOLS}, (
        f"{len(rows)} rows for 60 records: counts {counts}"
    )


async def test_watermark_markers_skip_a_partition_a_rebalance_took(
    broker: Broker, tmp_path: Path
) -> None:
    """Stage 1 writes each source partition's watermark markers into that partition's
    transaction. Which partitions it owns is read before it takes the transactions' lock; a
    rebalance may change the assignment meanwhile (its revocation hook done, its assignment
    hook — which stops the moved partitions' producers — waiting for the lock): a partition no
    longer assigned is skipped (its position raised IllegalStateError, which stopped the worker
    in a two-worker run), the others are marked and committed."""
    kafka_url = broker.url
    app_id, names, pipeline, query, repartition = takeover_query(tmp_path, "marks")
    await ensure_topics(
        kafka_url,
        [TopicSpec(names["orders"], 2), TopicSpec(repartition, 2), TopicSpec(names["dlq"], 1)],
    )
    config = AgentConfig(
        bootstrap_servers=kafka_url,
        app_id=app_id,
        dead_letter_topic=names["dlq"],
        data_dir=tmp_path / "data",
        exactly_once=True,
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka_url)
    await producer.start()
    agent = RepartitionAgent(query, pipeline, {}, producer, config, no_tables)
    agent.output.set_partitions(repartition, [0, 1])
    txns = agent._transactions()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_url,
        group_id=f"{app_id}-{query.name}",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    tps = [TopicPartition(names["orders"], p) for p in (0, 1)]
    await consumer.start()
    try:
        consumer.assign(tps)
        await txns.start(tps)
        owned = dict(enumerate(tps))
        consumer.assign(tps[:1])  # the rebalance took partition 1; its hook has not run yet
        marks = [Mark(p, 2, BASE, False) for p in (0, 1)]
        await mark_in_transactions(agent, txns, consumer, owned, marks)
        assert not await txns.commit(everything=True)
    finally:
        await txns.close()
        await consumer.stop()
        await producer.stop()
    written = [mark_of(r.headers) for r in await read_committed(kafka_url, repartition)]
    # Partition 0's marker on each repartition partition; none of partition 1.
    assert written == [marks[0], marks[0]]
