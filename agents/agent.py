"""One continuous query as a mode Service: fetch a batch, process it, send, commit after the acks.

Three uses of one loop:

- a stateless query (filters, projections, joins, subqueries) reads through a consumer group
  ``<app_id>-<query>``: workers share the partitions, offsets are committed to the group only
  after every output of the batch — results and dead letters — was acknowledged (at-least-once);
- stage 1 of a stateful query (GROUP BY, windows), :class:`agents.repartition.RepartitionAgent`:
  the same, writing each source record to the query's repartition topic in the partition of its
  group key; stage 2 (:mod:`agents.stateful`) aggregates each repartition partition in one task
  on one worker, so the work and the outputs are shared, each group's by exactly one worker;
- a stateful query whose group key is not a function of the stream record alone (it reads a
  joined table's columns) cannot be repartitioned before the join: it reads *every* partition of
  its source on every worker (no group, like a global table) and keeps its state and source
  offsets together in RocksDB (:mod:`agents.global_source`). Each worker computes the whole
  aggregate: results are right with any number of workers, and each worker writes them
  (duplicates, which at-least-once allows). The worker logs this at start.

Batches are pipelined: while the broker acknowledges batch N, batch N+1 is processed; at most
``max_inflight`` batches wait for acks.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import OffsetOutOfRangeError
from mode import Service

from agents.compiling import QueryBuilder
from agents.config import AgentConfig, TablesReady
from agents.delivery import Delivery, Inflight
from agents.global_source import W_REBUILD, GlobalSource
from agents.hold import prefetch_batch
from agents.membership import MemberFile
from agents.metrics import QueryStats, log_summaries
from agents.pipeline import Pipeline, QueryDef
from agents.process import BatchCounts, RawRecord
from agents.sink import Output
from agents.source import (
    Rebalance,
    query_transactions,
    show_lag,
    source_consumer,
)
from agents.state import StateMismatch
from agents.transaction import Transactions
from agents.transactional import transactional_step
from agents.watermarks import PartitionClock
from core import gcpause
from core.fetch import getmany_raw, highwater, supported
from core.retry import StartupRetry
from core.stop import bounded, stop_in_order
from sql import CompiledQuery
from tables import Table
from tables.topics import topic_partitions

#: Moved to agents.config and agents.metrics; still importable from here.
__all__ = ["AgentConfig", "Processor", "QueryAgent", "TablesReady", "log_summaries"]

logger = logging.getLogger(__name__)

I_RUNNING = "query %s: running (%s, %s -> %s)"


class Processor(Protocol):
    """One batch of source records into output records (:class:`agents.process.BatchProcessor`,
    :class:`agents.repartition.RepartitionProcessor`)."""

    keep_partition: bool

    def run_fetched(
        self, fetched: Mapping[Any, Sequence[RawRecord]], output: Output
    ) -> BatchCounts: ...


class QueryAgent(Service):
    """Runs ``query`` from its source topic to its sink topic, forever."""

    #: Reads through the consumer group ``<app_id>-<query>`` (else: every partition, own state).
    grouped: bool

    def __init__(
        self,
        query: QueryDef,
        pipeline: Pipeline,
        tables: dict[str, Table],
        producer: AIOKafkaProducer,
        config: AgentConfig,
        wait_tables: TablesReady,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.qdef = query
        self.pipeline = pipeline
        self.tables = tables
        self.config = config
        self.source_topic = pipeline.source_topic(query)
        self.sink_topic = self.sink_topic_of(query, config)
        self.grouped = not query.stateful
        self.output = Output(producer)
        self._wait_tables = wait_tables
        self.stats = QueryStats(
            self.stats_name(query),
            self.source_topic,
            self.sink_topic,
            self.kind(query),
        )
        self.builder = QueryBuilder(
            query,
            pipeline,
            tables,
            config.dead_letter_topic,
            self.sink_topic,
            codegen=config.codegen,
        )
        # External tables show their source's stats with each query that reads them.
        self.stats.sources = {
            n: t.stats().as_dict
            for n, t in tables.items()
            if n in query.reads and t.kind not in ("kafka", "memory")
        }
        self.query: CompiledQuery | None = None
        self.processor: Processor | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self.delivery = Delivery(query.name, self.stats, config.max_inflight, self.crash)
        #: Not grouped: every partition, with the query's state (:mod:`agents.global_source`).
        self._global: GlobalSource | None = None
        self._keep_partition = False
        self._raw_fetch = False
        #: Under exactly-once: a transaction per source partition (:mod:`agents.transaction`).
        self.txns: Transactions | None = None
        #: Not repartitioned and windowed: the watermark over the source partitions.
        self._clock: PartitionClock | None = None
        #: A dynamic member's id file (:mod:`agents.membership`).
        self._member: MemberFile | None = None

    # -- what a subclass changes (see agents.repartition) ------------------------------------------
    @staticmethod
    def sink_topic_of(query: QueryDef, config: AgentConfig) -> str:
        return query.sink_topic

    @staticmethod
    def stats_name(query: QueryDef) -> str:
        return query.name

    @staticmethod
    def kind(query: QueryDef) -> str:
        return "stateful" if query.stateful else "stateless"

    def make_processor(self, query: CompiledQuery) -> Processor:
        return self.builder.processor(query)

    @property
    def label(self) -> str:
        return f"{type(self).__name__}[{self.stats.name}]"

    # -- setup ------------------------------------------------------------------------------------
    def _compile(self) -> CompiledQuery:
        if self.query is not None:
            self.query.close()
        query = self.builder.query()
        cfg = self.config
        if self._clock is not None and self._consumer is not None:
            self._clock.skew.release(self._consumer)  # a rebuild: the new clock starts afresh
        self._clock = None
        if not self.grouped and query.is_windowed and cfg.watermark_per_source:
            self._clock = PartitionClock(cfg.watermark_idle_timeout, cfg.watermark_max_skew_ms)
            query.set_clock(self._clock.observe)
        self.processor = self.make_processor(query)
        self.processor.keep_partition = self._keep_partition
        self.query = query
        return query

    def _new_consumer(self) -> AIOKafkaConsumer:
        group = f"{self.config.app_id}-{self.qdef.name}" if self.grouped else None
        windowed = self.query is not None and self.query.is_windowed
        return source_consumer(self.config, self.stats.name, group, windowed=windowed)

    async def _open_source(self) -> None:
        consumer = self._consumer = self._new_consumer()
        # Tried again while the broker is away (lost between the worker's BrokerGate and here).
        retry = StartupRetry(self.config.bootstrap_servers, self)
        await retry(f"start query {self.stats.name!r}'s consumer", consumer.start)
        self._raw_fetch = supported(consumer)
        await self.output.prepare([self.sink_topic, self.config.dead_letter_topic])
        parts = await topic_partitions(consumer, self.source_topic)
        assert self.processor is not None
        self._keep_partition = len(parts) == self.output.partitions(self.sink_topic)
        self.processor.keep_partition = self._keep_partition
        if self.grouped:
            if self.config.exactly_once:
                self.txns = self._transactions()
            self.delivery.consumer = consumer
            self.delivery.background_commits = True
            self._member = self.config.member_file(f"{self.config.app_id}-{self.qdef.name}")
            if self._member is not None:
                await self._member.leave_previous(self.config.bootstrap_servers, self.label)
            rebalance = Rebalance(
                self.stats, lambda: self._consumer, self._drain, self.txns, self._member
            )
            consumer.subscribe([self.source_topic], listener=rebalance)
            return
        assert self.query is not None
        source = self._global = GlobalSource(
            self.qdef, self.source_topic, self.config.data_dir, self.stats
        )
        windowed, clock = self.query.is_windowed, self._clock is not None
        source.assign(consumer, parts, windowed=windowed, clock=clock)
        await source.seek(consumer, self.query, self._clock, self._compile)

    def _transactions(self) -> Transactions:
        cfg = self.config
        group, name = f"{cfg.app_id}-{self.qdef.name}", self.stats.name
        return query_transactions(cfg, name, group, self.sink_topic, f"{cfg.app_id}-{name}", self)

    async def _rebuild(self, why: str) -> None:
        logger.warning(W_REBUILD, self.qdef.name, self.source_topic, why)
        self.stats.rebuilds += 1
        self.stats.state = "rebuilding"
        await self._drain()
        source, consumer = self._global, self._consumer
        assert source is not None
        assert consumer is not None
        source.state.reset()
        query = self._compile()
        await source.seek(consumer, query, self._clock, self._compile)
        self.stats.state = "running"

    # -- the loop ---------------------------------------------------------------------------------
    @Service.task
    async def _main(self) -> None:
        try:
            self.stats.state = "waiting for tables"
            await self._wait_tables(self.qdef.reads)
            self._compile()
            await self._open_source()
            self.stats.state = "running"
            # Everything built so far (faust, sqlglot trees, compiled plans) lives as long as the
            # worker: out of the collector's generations, a full collection no longer walks it —
            # a latency tail of tens of ms otherwise.
            gc.freeze()
            stats = self.stats
            logger.info(I_RUNNING, stats.name, stats.kind, self.source_topic, self.sink_topic)
            while not self.should_stop:
                try:
                    await self._step()
                except StateMismatch as exc:
                    await self._rebuild(str(exc))
                except OffsetOutOfRangeError as exc:
                    if self.grouped:
                        raise
                    await self._rebuild(f"offset out of range: {exc}")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.stats.state, self.stats.error = "failed", f"{type(exc).__name__}: {exc}"
            logger.exception("query %s failed", self.stats.name)
            await self.crash(exc)

    async def _step(self) -> None:
        # No cyclic collection while a batch is fetched and run (core.gcpause): its ~10k
        # records (aiokafka's C records are tracked containers) and what they make are freed
        # before any collection scans them; with the default thresholds they were scanned ~14
        # times per batch (~0.08 µs of the 0.2 µs a record costs to fetch).
        with gcpause.paused():
            await self._run_step()

    async def _run_step(self) -> None:
        consumer, processor = self._consumer, self.processor
        assert consumer is not None
        assert processor is not None
        fetched: dict[TopicPartition, Any] = (
            await getmany_raw(consumer, 200, self.config.max_records)
            if self._raw_fetch
            else await consumer.getmany(timeout_ms=200, max_records=self.config.max_records)
        )
        source = self._global
        if self._clock is not None and source is not None:
            owned = {tp.partition: tp for tp in source.tps}
            hw = functools.partial(highwater, consumer)
            self._clock.step(consumer, self.stats.partitions, owned, hw, time.monotonic())
        if source is not None:
            source.check_highwaters(consumer)
        if self.txns is not None:
            await transactional_step(self, self.txns, consumer, processor, fetched)
            return
        if not fetched:
            show_lag(consumer, self.stats)
            await self.delivery.commit_if_idle()
            return
        started = time.monotonic()
        if source is not None:
            fetched = source.verified(fetched)
        # External tables: the batch's keys fetched at once (a grouped consumer keeps polling
        # while a source that is down holds the batch, to stay in its group).
        await prefetch_batch(processor, fetched, consumer if self.grouped else None)
        counts = processor.run_fetched(fetched, self.output)
        writes = []
        if source is not None and self.query is not None:
            writes.append((source.state, source.batch(self.query, self._clock, counts)))
        futures = await self.output.flush()
        last = counts.last
        offsets = {tp: last[tp.partition].offset + 1 for tp in fetched if tp.partition in last}
        await self.delivery.put(Inflight(futures, offsets, writes, started))
        stats = self.stats
        stats.add(counts)
        stats.batches += 1
        for tp, off in offsets.items():
            stats.partitions[tp.partition] = (off, highwater(consumer, tp))

    @Service.task
    async def _committer(self) -> None:
        await self.delivery.run(lambda: self.should_stop)

    async def _drain(self) -> None:
        await self.delivery.drain()

    @Service.task
    async def _summary(self) -> None:
        await log_summaries(self, self.stats, self.config.log_interval)

    async def on_stop(self) -> None:
        def take_consumer() -> AIOKafkaConsumer | None:
            consumer, self._consumer = self._consumer, None
            return consumer

        def close() -> None:
            if self._global is not None:
                self._global.state.close()
            if self.query is not None:
                self.query.close()
            self.builder.close()
            if self.stats.state != "failed":
                self.stats.state = "stopped"

        # The stores are closed whatever the commits and the consumer's stop before do.
        drain = bounded(self._drain(), 10)
        await stop_in_order(self.label, drain, lambda: self.txns, take_consumer, close)
