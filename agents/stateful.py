"""Stage 2 of a stateful query: each repartition partition aggregated by one task on one worker.

The consumer group ``<app_id>-<query>-agg`` shares the partitions of the repartition topic
(written by :mod:`agents.repartition`) among the workers; for each partition it is assigned, a
worker runs an :class:`agents.tasks.AggregateTask` — its own compiled query, RocksDB state and
watermark. Every record of a group is in one partition, so each group's results come from
exactly one worker, keyed by the group key as before.

A co-partitioned query (its GROUP BY holds the source's record key, :mod:`agents.copartition`)
has no stage 1: the same group reads the *source* topic's partitions, one task each, every
record checked against its declared key first; its watermark is the task's own stream time (no
markers come from a stage 1), as a Kafka Streams task's.

- **Assigned**: the task opens its local state, verified against the topic; it resumes from the
  offset the state reflects, or — no state, or state that does not fit — replays the partition
  from its earliest offset. The group's committed offsets (committed once a batch's outputs were
  acknowledged and its state written) do not say where to read, but which outputs were written:
  records below them only rebuild state (:mod:`agents.tasks`).
- **Revoked**: in-flight batches are drained (outputs acknowledged, state written) before the
  partitions move; tasks staying with this worker stay open, the others are closed.
- **At-least-once**: a repartition offset is in a task's stored state only once every output it
  caused was acknowledged (:mod:`agents.delivery`); a crash re-processes what follows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import OffsetOutOfRangeError
from mode import Service

from agents.agent import AgentConfig, TablesReady, log_summaries
from agents.compiling import QueryBuilder
from agents.copartition import CheckedProcessor, KeyCheck
from agents.delivery import Delivery
from agents.membership import MemberFile
from agents.metrics import QueryStats
from agents.pipeline_model import Pipeline, QueryDef, repartition_topic
from agents.process import OutputLike, PerPartition
from agents.sink import Output
from agents.source import query_transactions, source_consumer
from agents.stable_offsets import stable_committed
from agents.state import StateMismatch
from agents.stateful_hooks import TaskHooks
from agents.stateful_step import run_fetched
from agents.tasks import AggregateTask
from agents.transaction import Transactions
from agents.transactional import align, stateful_step
from core import gcpause
from core.fetch import getmany_raw, highwater, supported
from core.retry import StartupRetry
from core.stop import stop_in_order
from sql import CompiledQuery
from tables.protocol import Table

logger = logging.getLogger(__name__)

W_REBUILD = (
    "query %r: local state of %s[%s] does not fit the topic (%s);"
    " rebuilding from the earliest offset"
)
I_TASK = "query %s: task %s[%d] %s"
I_QUIET = "query %s: task %s[%d] rebuilds state without outputs up to offset %d (written before)"
W_RETENTION = (
    "query %s: %s[%d] begins at offset %d, past what its task's state reflects: the records"
    " between were deleted by the topic's retention before they were aggregated"
)
I_RUNNING = "query %s: running (stateful, %s -> %s; %s)"


class StatefulAgent(Service):
    """The aggregation stage of ``query``: repartition topic → tasks → sink topic; for a
    co-partitioned query (:mod:`agents.copartition`) the source topic itself → tasks."""

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
        self.config = config
        #: Co-partitioned: one task per source partition, no repartition topic.
        self.copartitioned = query.copartitioned
        self.topic = (
            pipeline.source_topic(query)
            if query.copartitioned
            else repartition_topic(config.app_id, query.name)
        )
        self.stream = pipeline.streams[query.source].name if query.copartitioned else ""
        self.group_id = f"{config.app_id}-{query.name}-agg"
        # Handed to the producer in the background: the next batch runs while this one's go out.
        self.output = Output(producer, background=True)
        self.stats = QueryStats(query.name, self.topic, query.sink_topic, "stateful")
        self.builder = QueryBuilder(query, pipeline, tables, config.dead_letter_topic)
        #: Co-partitioned: the source's partition count (each task checks placement by it) and
        #: where each assigned partition begins (a source topic has a retention).
        self._partitions = 0
        self._begins: dict[TopicPartition, int] = {}
        self.delivery = Delivery(query.name, self.stats, config.max_inflight, self.crash)
        self.tasks: dict[int, AggregateTask] = {}
        self._wait_tables = wait_tables
        self._consumer: AIOKafkaConsumer | None = None
        self._raw_fetch = False
        # Held while a fetched batch is processed and handed over, and while tasks change hands.
        self._lock = asyncio.Lock()
        #: Under exactly-once: a transaction per task (:mod:`agents.transactional`).
        self.txns: Transactions | None = None
        #: A dynamic member's id file (:mod:`agents.membership`).
        self._member: MemberFile | None = None

    @property
    def label(self) -> str:
        return f"StatefulAgent[{self.qdef.name}]"

    def _new_consumer(self) -> AIOKafkaConsumer:
        # Every assigned partition is sought from its task's local state (the group's offset
        # reset applies only before that seek); a stored offset past the end is caught by the
        # task's checks. One watermark per task: no fine interleaving of partitions needed.
        return source_consumer(self.config, self.qdef.name, self.group_id, windowed=False)

    def _transactions(self) -> Transactions:
        cfg, name, group = self.config, self.qdef.name, self.group_id
        return query_transactions(cfg, name, group, self.qdef.sink_topic, group, self)

    # -- tasks ------------------------------------------------------------------------------------
    def _task(self, partition: int) -> AggregateTask:
        tp = TopicPartition(self.topic, partition)
        path = self.config.data_dir / "queries" / self.qdef.name / f"p{partition}"
        if self.copartitioned:
            # No markers: the task's own stream time is its watermark, as a Kafka Streams task's.
            check = KeyCheck(
                self.stream,
                self.topic,
                self._partitions,
                self.qdef.key_column,
                self.builder.decoder(),
            )

            def checked() -> tuple[CompiledQuery, PerPartition[OutputLike]]:
                query, processor = self.builder.both()
                return query, CheckedProcessor(
                    processor, check, self.qdef.name, fold=self.builder.codegen
                )

            return AggregateTask(
                self.qdef.name, tp, path, checked, clock=False, repartitioned=False
            )
        # Stage 1 writes watermark markers (agents.watermarks) unless that is turned off.
        clock = self.config.watermark_per_source
        return AggregateTask(self.qdef.name, tp, path, self.builder.both, clock)

    def _seek(self, task: AggregateTask) -> None:
        consumer = self._consumer
        assert consumer is not None
        # An explicit offset even for the beginning: ``seek_to_beginning`` only marks the
        # partition for a reset, which the group's committed offset would then win over. A
        # repartition topic is never truncated (retention.ms=-1): it begins at 0; a source topic
        # begins where its retention left it.
        offset = task.seek_offset
        begin = self._begins.get(task.tp, 0)
        if offset < begin:
            if task.position >= begin:
                # Only the last applied record is gone (an idle partition outlived it): the
                # state is not verified against it, reading resumes after it.
                task.verifier.pending.pop(task.tp, None)
                offset = task.position
            else:
                logger.warning(W_RETENTION, self.qdef.name, self.topic, task.tp.partition, begin)
                offset = begin
        consumer.seek(task.tp, offset)
        self.stats.partitions[task.tp.partition] = (task.position, highwater(consumer, task.tp))

    async def assign(self, assigned: set[TopicPartition], *, held: bool = False) -> None:
        """Tasks for exactly the ``assigned`` partitions, each sought to where its state is.
        ``held``: the caller holds the lock (exactly-once:
        :func:`agents.transactional.tasks_assigned`)."""
        async with contextlib.nullcontext() if held else self._lock:
            wanted = {tp.partition for tp in assigned if tp.topic == self.topic}
            if self.copartitioned and wanted:
                await self._source_layout(sorted(wanted))
            for p in sorted(set(self.tasks) - wanted):
                self.tasks.pop(p).close()
                self.stats.partitions.pop(p, None)
                logger.info(I_TASK, self.qdef.name, self.topic, p, "closed")
            for p in sorted(wanted):
                task = self.tasks.get(p) or self._open(p)
                await self._quiet(task)
                self._seek(task)

    def _open(self, partition: int, resumes: str = "resumes") -> AggregateTask:
        # Registered once open: a store that failed to open must not stay behind as a half-open
        # task the loop would later trip over.
        task = self._task(partition)
        if self.txns is None:
            task.write_interval = self.config.state_write_interval
        resumed = task.open()
        self.tasks[partition] = task
        if not resumed:
            self.stats.replays += 1
        how = f"{resumes} at offset {task.position}" if resumed else "replays from 0"
        logger.info(I_TASK, self.qdef.name, self.topic, partition, how)
        return task

    def reopen(self, partition: int) -> AggregateTask:
        """The task of ``partition`` opened again from its stored state, which holds exactly
        what committed (an aborted transaction's batches never reach it; its live state may
        hold them). Seeking it is the caller's."""
        self.tasks.pop(partition).close()
        return self._open(partition, "reopened from its state")

    async def _source_layout(self, partitions: list[int]) -> None:
        consumer = self._consumer
        assert consumer is not None
        self._partitions = len(consumer.partitions_for_topic(self.topic) or partitions)
        tps = [TopicPartition(self.topic, p) for p in partitions]
        self._begins = dict(await consumer.beginning_offsets(tps))

    async def _quiet(self, task: AggregateTask) -> None:
        """Records below the group's committed offset had their outputs written by whoever
        committed it: replaying them only rebuilds state."""
        consumer = self._consumer
        assert consumer is not None
        if self.txns is not None:
            # Stable: the previous owner's last transaction may still be settling its offsets.
            txns = self.txns
            committed = (await stable_committed(consumer, txns.group_id, [task.tp]))[task.tp]
            committed = align(self.qdef.name, task, txns, committed)
        else:
            committed = await consumer.committed(task.tp)
        hw = highwater(consumer, task.tp)
        if committed is not None and (hw is None or committed <= hw):
            task.quiet_until = committed
            if committed > task.position:
                logger.info(I_QUIET, self.qdef.name, self.topic, task.tp.partition, committed)

    async def revoke(self) -> None:
        """Before partitions move: every in-flight batch acknowledged and its state written."""
        async with self._lock:
            await self._drain_and_flush(30)

    async def _drain_and_flush(self, timeout: float) -> None:
        """Every in-flight batch acknowledged, then the state the tasks' interval left unwritten
        (:attr:`AggregateTask.write_interval`) written — only then: a state reflects only
        records whose outputs were acknowledged."""
        try:
            await asyncio.wait_for(self.delivery.drain(), timeout)
        except TimeoutError:
            return
        if self.stats.state == "failed":
            return  # a batch's outputs were not acknowledged: nothing more may be written
        for task in self.tasks.values():
            task.flush()

    async def _rebuild(self, partition: int | None, why: str) -> None:
        async with self._lock:
            await self.delivery.drain()
            for p, task in sorted(self.tasks.items()):
                if partition is None or p == partition:
                    logger.warning(W_REBUILD, self.qdef.name, self.topic, p, why)
                    self.stats.rebuilds += 1
                    task.reset()
                # The fetch that found the mismatch was dropped: every task reads on from its
                # own position.
                self._seek(task)

    # -- the loop ---------------------------------------------------------------------------------
    @Service.task
    async def _main(self) -> None:
        try:
            self.stats.state = "waiting for tables"
            await self._wait_tables(self.qdef.reads)
            self.builder.query().close()  # the tables are ready: check the query compiles
            consumer = self._consumer = self._new_consumer()
            # Tried again while the broker is away (lost between the worker's BrokerGate and
            # here); a stop meanwhile ends the wait at once.
            retry = StartupRetry(self.config.bootstrap_servers, self)
            await retry(f"start query {self.qdef.name!r}'s stage-2 consumer", consumer.start)
            self._raw_fetch = supported(consumer)
            topics = [self.qdef.sink_topic, self.config.dead_letter_topic]
            await retry("read the sink topics' partitions", lambda: self.output.prepare(topics))
            self.delivery.consumer = consumer
            self.delivery.background_commits = True
            if self.config.exactly_once:
                self.txns = self._transactions()
            self._member = self.config.member_file(self.group_id)
            if self._member is not None:
                await self._member.leave_previous(self.config.bootstrap_servers, self.label)
            consumer.subscribe([self.topic], listener=TaskHooks(self))
            self.stats.state = "running"
            gc.freeze()  # see QueryAgent._main
            how = self.qdef.partitioning
            logger.info(I_RUNNING, self.qdef.name, self.topic, self.qdef.sink_topic, how)
            while not self.should_stop:
                try:
                    # No cyclic collection while a batch is fetched and run: see QueryAgent._step.
                    with gcpause.paused():
                        await self._step()
                except StateMismatch as exc:
                    await self._rebuild(exc.partition, str(exc))
                except OffsetOutOfRangeError as exc:
                    bad = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
                    parts = {tp.partition for tp in bad} or {None}
                    for p in parts:
                        await self._rebuild(p, f"offset out of range: {exc}")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.stats.state, self.stats.error = "failed", f"{type(exc).__name__}: {exc}"
            logger.exception("query %s failed", self.qdef.name)
            await self.crash(exc)

    async def _step(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        max_records = self.config.max_records
        fetched: dict[TopicPartition, Any] = (
            await getmany_raw(consumer, 200, max_records)
            if self._raw_fetch
            else await consumer.getmany(timeout_ms=200, max_records=max_records)
        )
        if self.txns is not None:
            await stateful_step(self, self.txns, consumer, fetched)
            return
        await run_fetched(self, consumer, fetched)

    def update_lag(self) -> None:
        """Each task's position against its partition's last seen high-watermark."""
        consumer = self._consumer
        if consumer is None:
            return
        for p, task in self.tasks.items():
            hw = highwater(consumer, task.tp)
            if hw is not None:
                self.stats.partitions[p] = (task.position, hw)

    @Service.task
    async def _committer(self) -> None:
        await self.delivery.run(lambda: self.should_stop)

    @Service.task
    async def _summary(self) -> None:
        await log_summaries(self, self.stats, self.config.log_interval)

    async def on_stop(self) -> None:
        def take_consumer() -> AIOKafkaConsumer | None:
            consumer, self._consumer = self._consumer, None
            return consumer

        def close() -> None:
            for task in self.tasks.values():
                task.close()
            self.tasks.clear()
            self.builder.close()
            if self.stats.state != "failed":
                self.stats.state = "stopped"

        # The tasks' stores are closed whatever the commits and the consumer's stop before do;
        # the transactions close under the lock the step writes under.
        await stop_in_order(
            self.label,
            self._drain_and_flush(10),
            lambda: self.txns,
            take_consumer,
            close,
            lock=self._lock,
        )
