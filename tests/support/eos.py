"""Exactly-once tests' helpers: reading what transactions committed, and the small stateful
query the in-process tests drive through the agents' hooks on the real broker."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from agents.config import AgentConfig, TablesReady
from agents.pipeline import load_pipeline
from agents.pipeline_model import Pipeline, repartition_topic
from agents.repartition import H_ORIGIN, pack_origin
from agents.stateful import StatefulAgent
from agents.stateful_hooks import TaskHooks
from agents.transaction import Transactions
from agents.transactional import stateful_step
from core import codec
from core.fetch import getmany_raw
from tables.topics import TopicSpec, ensure_topics
from tests.support.kafka import unique

#: The symbols of :data:`TAKEOVER`'s orders.
SYMBOLS = ["AAPL", "MSFT"]


async def read_committed(servers: str, topic: str, timeout: float = 30.0) -> list[Any]:
    """Every committed record of ``topic``, up to its last stable offset."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=servers, enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        await consumer._client.add_topic(topic)
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or set()]
        assert tps, f"no topic {topic}"
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)  # read_committed: the last stable offsets
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for msgs in (await consumer.getmany(timeout_ms=200)).values():
                out.extend(msgs)
            if all([await consumer.position(tp) >= ends[tp] for tp in tps]):
                return out
        raise AssertionError(f"{topic}: not read to its end in {timeout}s")
    finally:
        await consumer.stop()


TAKEOVER = """\
CREATE STREAM orders (order_id BIGINT, symbol VARCHAR, qty BIGINT) WITH (topic='{orders}');
CREATE TABLE volume WITH (topic='{volume}') AS
SELECT symbol, COUNT(*) AS n FROM orders GROUP BY symbol EMIT CHANGES;
"""


def takeover_query(tmp_path: Path, prefix: str) -> tuple[str, dict[str, str], Any, Any, str]:
    """:data:`TAKEOVER` on fresh topics: the app id, the topic names, the pipeline, its query,
    and the query's repartition topic."""
    app_id = unique(prefix)
    names = {n: unique(n) for n in ("orders", "volume", "dlq")}
    tmp_path.mkdir(parents=True, exist_ok=True)
    pipeline_sql = tmp_path / "pipeline.sql"
    pipeline_sql.write_text(TAKEOVER.format(**names))
    pipeline = load_pipeline([pipeline_sql])
    (query,) = pipeline.queries
    return app_id, names, pipeline, query, repartition_topic(app_id, query.name)


async def no_tables(names: Any) -> None:
    """The agent's wait for its tables: the query reads none."""


async def write_stage1(
    producer: AIOKafkaProducer,
    topic: str,
    first: int,
    n: int,
    partition: int = 0,
    symbol: str | None = None,
) -> None:
    """``n`` repartition records of ``partition`` as stage 1 writes them (origin header): order
    ``i`` of ``symbol``, by default ``SYMBOLS[i % 2]``, quantity 1."""
    for i in range(first, first + n):
        value = codec.dumps({"order_id": i, "symbol": symbol or SYMBOLS[i % 2], "qty": 1})
        headers = [(H_ORIGIN, pack_origin(partition, i))]
        await producer.send(topic, value, partition=partition, headers=headers)
    await producer.flush()


@dataclass
class Stage2:
    """Stage 2 of :data:`TAKEOVER` under exactly-once, in process: its agent (not started), the
    worker's output producer (started), the topic names and the repartition topic."""

    agent: StatefulAgent
    producer: AIOKafkaProducer
    names: dict[str, str]
    repartition: str
    pipeline: Pipeline

    def another(self, data_dir: Path) -> StatefulAgent:
        """The same query's stage 2 on another worker (its own data directory)."""
        agent = self.agent
        cfg = dataclasses.replace(agent.config, data_dir=data_dir)
        return StatefulAgent(agent.qdef, self.pipeline, {}, self.producer, cfg, no_tables)

    async def close(self) -> None:
        await self.agent.stop()
        await self.producer.stop()

    async def counts(self) -> dict[str, list[int]]:
        """Each symbol's committed COUNT rows, in the sink's order."""
        url = self.agent.config.bootstrap_servers
        rows = [codec.loads_exact(r.value) for r in await read_committed(url, self.names["volume"])]
        by: dict[str, list[int]] = {s: [] for s in SYMBOLS}
        for r in rows:
            by.setdefault(r["symbol"], []).append(r["n"])
        return by


async def stage2(
    servers: str,
    tmp_path: Path,
    prefix: str,
    wait_tables: TablesReady = no_tables,
    partitions: int = 1,
    sink: dict[str, str] | None = None,
    **config: Any,
) -> Stage2:
    """:class:`Stage2` on fresh topics (the repartition topic of ``partitions``, the sink with
    the topic configs ``sink``); ``config``: :class:`AgentConfig` fields besides the broker,
    ids, topics and data directory."""
    app_id, names, pipeline, query, repartition = takeover_query(tmp_path, prefix)
    topics = [
        TopicSpec(repartition, partitions),
        TopicSpec(names["volume"], 1, configs=sink or {}),
        TopicSpec(names["dlq"], 1),
    ]
    await ensure_topics(servers, topics)
    cfg = AgentConfig(
        bootstrap_servers=servers,
        app_id=app_id,
        dead_letter_topic=names["dlq"],
        data_dir=tmp_path / "data",
        exactly_once=True,
        watermark_per_source=False,
        **config,
    )
    producer = AIOKafkaProducer(bootstrap_servers=servers)
    await producer.start()
    agent = StatefulAgent(query, pipeline, {}, producer, cfg, wait_tables)
    return Stage2(agent, producer, names, repartition, pipeline)


@dataclass
class Driven:
    """A stage-2 agent driven by the test as its loop and aiokafka drive it: its consumer
    assigned by hand, its rebalance hooks called as aiokafka calls them, its loop's steps run
    until a task reached an offset."""

    agent: StatefulAgent
    consumer: AIOKafkaConsumer
    txns: Transactions
    hook: TaskHooks

    @classmethod
    async def of(cls, agent: StatefulAgent) -> Driven:
        consumer = agent._consumer = agent._new_consumer()
        txns = agent.txns = agent._transactions()
        await consumer.start()
        return cls(agent, consumer, txns, TaskHooks(agent))

    async def assign(self, *tps: TopicPartition) -> None:
        self.consumer.assign(list(tps))
        await self.hook.on_partitions_assigned(set(tps))

    async def revoke(self) -> None:
        await self.hook.on_partitions_revoked(self.consumer.assignment())

    async def run_until(self, partition: int, position: int, *, commit: bool = True) -> None:
        """The loop's steps until the task of ``partition`` applied everything below
        ``position``; then, with ``commit``, every open transaction committed."""
        agent, deadline = self.agent, time.monotonic() + 30
        while agent.tasks[partition].position < position:
            assert time.monotonic() < deadline, f"stuck at {agent.tasks[partition].position}"
            fetched = await getmany_raw(self.consumer, 200, 1000)
            await stateful_step(agent, self.txns, self.consumer, fetched)
        if commit:
            async with agent._lock:
                assert not await self.txns.commit(everything=True)

    async def close(self) -> None:
        async with self.agent._lock:
            await self.txns.close()
        await self.consumer.stop()
        for task in self.agent.tasks.values():
            task.close()
        self.agent.builder.close()
