"""The pipelines of a worker: creates their topics, owns the output producer, runs the agents of
every continuous query — one for a stateless query, two for a repartitioned stateful one (the
repartition stage and the aggregation stage, :mod:`agents.repartition`, :mod:`agents.stateful`),
one aggregation stage reading the source for a co-partitioned one (:mod:`agents.copartition`).
Each agent waits for the tables its query reads before reading its source."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from mode import Service

from agents.agent import AgentConfig, QueryAgent
from agents.membership import static_pays
from agents.pipeline import Pipeline
from agents.repartition import RepartitionAgent
from agents.sink import MAX_BATCH_BYTES
from agents.stateful import StatefulAgent
from agents.transaction import check_transactions
from agents.transactional import check_queries
from core.produce import lean_produce
from core.retry import StartupRetry
from tables.registry import TableRegistry
from tables.topics import ensure_topics, existing_topics

Agent = QueryAgent | StatefulAgent


class PipelineService(Service):
    """Every continuous query of the worker's pipeline files, as agent children."""

    def __init__(
        self,
        pipeline: Pipeline,
        registry: TableRegistry,
        config: AgentConfig,
        default_partitions: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.registry = registry
        self.config = config
        self.default_partitions = default_partitions
        self.agents: list[Agent] = []
        self._producer: AIOKafkaProducer | None = None

    @property
    def label(self) -> str:
        return "PipelineService"

    def __iter__(self) -> Iterator[Agent]:
        return iter(self.agents)

    async def _wait_tables(self, names: Sequence[str]) -> None:
        by_name = {t.name.lower(): t for t in self.registry}
        for name in names:
            table = by_name.get(name)
            if table is not None:
                while not await table.wait_until_ready(timeout=1.0):
                    if self.should_stop:
                        raise asyncio.CancelledError

    async def on_start(self) -> None:
        # The dead-letter topic is the TableRegistry's (started before this service). Each step
        # that needs the broker is tried again while it is away (started during an outage).
        servers = self.config.bootstrap_servers
        retry = StartupRetry(servers, self)
        if self.config.exactly_once:
            check_queries(self.pipeline.queries)
            probe_id = f"{self.config.app_id}-probe"
            await retry("probe transactions", lambda: check_transactions(servers, probe_id))
        cfg = self.config
        if cfg.membership_auto and cfg.group_instance_id is not None:
            # One question to the broker: dynamic members where static ones are held (Tansu).
            static = await static_pays(cfg.bootstrap_servers)
            if not static:
                self.config = dataclasses.replace(self.config, group_instance_id=None)
        topics = self.pipeline.topics(self.default_partitions)
        await retry("create the queries' topics", lambda: ensure_topics(servers, topics))
        if any(q.repartition for q in self.pipeline.queries):
            # Sized after the source topics as they are (created just now or long ago).
            existing = await retry("list the topics", lambda: existing_topics(servers))
            internal = self.pipeline.repartition_topics(
                self.config.app_id, existing, self.default_partitions
            )
            await retry("create the repartition topics", lambda: ensure_topics(servers, internal))
        # acks=all and no idempotence: Tansu rejects idempotent producers.
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.config.bootstrap_servers,
            client_id=f"{self.config.app_id}-pipelines",
            acks="all",
            max_batch_size=MAX_BATCH_BYTES,
            linger_ms=0,
        )
        # Produce requests encoded with one copy of the record batches (core.produce).
        lean_produce(self._producer)
        await retry("start the output producer", self._producer.start)
        tables = {t.name.lower(): t for t in self.registry}
        for q in self.pipeline.queries:
            # Repartitioned: two stages; co-partitioned: the aggregating stage reads the source.
            kinds: list[type[Agent]] = (
                [RepartitionAgent, StatefulAgent]
                if q.repartition
                else [StatefulAgent]
                if q.copartitioned
                else [QueryAgent]
            )
            for kind in kinds:
                agent = kind(
                    q,
                    self.pipeline,
                    dict(tables),
                    self._producer,
                    self.config,
                    self._wait_tables,
                    beacon=self.beacon,
                )
                self.agents.append(agent)
                await self.add_runtime_dependency(agent)

    async def on_shutdown(self) -> None:
        # Children (the agents) stopped before on_shutdown: no batch is being sent.
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()
