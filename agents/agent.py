"""One continuous query as a mode Service: fetch a batch, process it, send, commit after the acks.

Two ways to read the source, one loop:

- a stateless query (filters, projections, joins, subqueries) reads through a consumer group
  ``<app_id>-<query>``: workers share the partitions, offsets are committed to the group only
  after every output of the batch — results and dead letters — was acknowledged (at-least-once);
- a stateful query (GROUP BY, windows) reads *every* partition of its source on every worker (no
  group, like a global table) and keeps its state and source offsets together in RocksDB
  (:mod:`agents.state`). Each worker thus computes the whole aggregate: results are correct with
  any number of workers, and each worker writes them (duplicates, which at-least-once allows).
  Sharing the work needs a repartition topic keyed by the group key (as ksqlDB does): not built.

Batches are pipelined: while the broker acknowledges batch N, batch N+1 is processed; at most
``max_inflight`` batches wait for acks.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import OffsetOutOfRangeError
from mode import Service

from agents.cache import CachedTable
from agents.codec import make_decoder
from agents.delivery import Delivery, Inflight
from agents.metrics import QueryStats
from agents.pipeline import Pipeline, QueryDef, catalog_for, compile_error, key_columns
from agents.process import BatchCounts, BatchProcessor
from agents.sink import Output
from agents.state import QueryState, StateMismatch, Verifier
from sql.errors import SqlCompileError, StateError
from sql.parse import parse_script
from sql.query import CompiledQuery, compile_query
from tables.protocol import Table
from tables.store import StoreBatch

logger = logging.getLogger(__name__)

W_REBUILD = "query %r: local state does not fit topic %r (%s); rebuilding from the earliest offset"
I_STATEFUL = (
    "query %s is stateful: this worker reads every partition of %r and holds the whole state"
    " (every worker does; results are correct, outputs repeat once per worker)"
)
W_WATERMARK = (
    "query %s: one watermark over %r (%d partitions); while catching up, a partition read"
    " ahead of another can make the other's records late"
)
#: Per-partition fetch size of windowed queries (a few hundred records per partition and fetch).
WINDOWED_FETCH_BYTES = 64 * 1024
I_SUMMARY = "query %s: %d in (%.0f/s), %d out, %d dead letters, lag %s"


@dataclass(frozen=True, slots=True)
class AgentConfig:
    bootstrap_servers: str
    app_id: str
    dead_letter_topic: str
    data_dir: Path
    session_timeout: float = 10.0
    max_records: int = 10_000
    max_inflight: int = 4
    log_interval: float = 10.0
    fetch_max_wait_ms: int = 5


TablesReady = Callable[[Sequence[str]], Any]


class QueryAgent(Service):
    """Runs ``query`` from its source topic to its sink topic, forever."""

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
        self.output = Output(producer)
        self._wait_tables = wait_tables
        self.stats = QueryStats(
            query.name,
            self.source_topic,
            query.sink_topic,
            "stateful" if query.stateful else "stateless",
        )
        self.query: CompiledQuery | None = None
        self.processor: BatchProcessor | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self.delivery = Delivery(query.name, self.stats, config.max_inflight, self.crash)
        self._tps: list[TopicPartition] = []
        self._state: QueryState | None = None
        self._verifier = Verifier()
        self._cached: list[CachedTable] = []
        self._keep_partition = False

    @property
    def label(self) -> str:
        return f"QueryAgent[{self.qdef.name}]"

    # -- setup ------------------------------------------------------------------------------------
    def _compile(self) -> CompiledQuery:
        if self.query is not None:
            self.query.close()
        for cached in self._cached:
            cached.close()
        # Versioned tables answer as-of reads the cache knows nothing of: they are read directly.
        self._cached = [
            CachedTable(t)
            for n, t in self.tables.items()
            if n in self.qdef.reads and not getattr(t, "versioned", False)
        ]
        tables: dict[str, Table] = {n: t for n, t in self.tables.items()}
        tables.update({c.name.lower(): c for c in self._cached})
        try:
            # The schemas of undeclared tables are known only now, from their rows.
            query = compile_query(self.qdef.sql, catalog_for(tables, self.pipeline))
        except SqlCompileError as exc:
            raise compile_error(self.qdef.path, exc) from exc
        decl = parse_script(self.qdef.sql).declarations.get(self.qdef.source)
        decode = make_decoder(decl.columns if decl is not None else None)
        self.processor = BatchProcessor(
            query,
            decode,
            name=self.qdef.name,
            sink_topic=self.qdef.sink_topic,
            key_columns=key_columns(query),
            dead_letter_topic=self.config.dead_letter_topic,
        )
        self.processor.keep_partition = self._keep_partition
        self.query = query
        return query

    def _new_consumer(self) -> AIOKafkaConsumer:
        cfg = self.config
        common: dict[str, Any] = {
            "bootstrap_servers": cfg.bootstrap_servers,
            "client_id": f"{cfg.app_id}-query-{self.qdef.name}",
            "enable_auto_commit": False,
            # A windowed query has one watermark for all partitions: small per-partition fetches
            # interleave the partitions finely while catching up, so one read far ahead of
            # another does not turn the other's records late.
            "max_partition_fetch_bytes": WINDOWED_FETCH_BYTES
            if self.query is not None and self.query.is_windowed
            else 8 * 1024 * 1024,
            "fetch_max_bytes": 64 * 1024 * 1024,
            # Tansu holds a fetch for its whole max wait even once data arrived: this bounds the
            # latency a record spends waiting to be fetched.
            "fetch_max_wait_ms": cfg.fetch_max_wait_ms,
        }
        if self.qdef.stateful:
            return AIOKafkaConsumer(group_id=None, auto_offset_reset="none", **common)
        return AIOKafkaConsumer(
            group_id=f"{cfg.app_id}-{self.qdef.name}",
            auto_offset_reset="earliest",
            session_timeout_ms=int(cfg.session_timeout * 1000),
            heartbeat_interval_ms=max(1000, int(cfg.session_timeout * 100)),
            **common,
        )

    async def _open_source(self) -> None:
        consumer = self._consumer = self._new_consumer()
        await consumer.start()
        await self.output.prepare([self.qdef.sink_topic, self.config.dead_letter_topic])
        await consumer.topics()
        parts = consumer.partitions_for_topic(self.source_topic) or set()
        assert self.processor is not None
        self._keep_partition = len(parts) == self.output.partitions(self.qdef.sink_topic)
        self.processor.keep_partition = self._keep_partition
        if not self.qdef.stateful:
            self.delivery.consumer = consumer
            consumer.subscribe([self.source_topic], listener=_Rebalance(self))
            return
        self._tps = [TopicPartition(self.source_topic, p) for p in sorted(parts)]
        consumer.assign(self._tps)
        logger.info(I_STATEFUL, self.qdef.name, self.source_topic)
        if len(self._tps) > 1 and self.query is not None and self.query.is_windowed:
            logger.warning(W_WATERMARK, self.qdef.name, self.source_topic, len(self._tps))
        self._state = QueryState(
            self.config.data_dir / "queries" / self.qdef.name, self.source_topic
        )
        self._state.open()
        self.delivery.state = self._state
        await self._seek_to_state()

    async def _seek_to_state(self) -> None:
        consumer, state, query = self._consumer, self._state, self.query
        assert consumer is not None
        assert state is not None
        assert query is not None
        positions, fingerprints = state.positions(), state.fingerprints()
        if positions:
            try:
                query.restore_state(state.items())
            except (StateError, pickle.UnpicklingError, ValueError, TypeError) as exc:
                logger.warning(W_REBUILD, self.qdef.name, self.source_topic, f"stored state: {exc}")
                self.stats.rebuilds += 1
                state.reset()
                query = self._compile()
                positions, fingerprints = {}, {}
        self._verifier = Verifier()
        for tp in self._tps:
            pos = positions.get(tp.partition, 0)
            fp = fingerprints.get(tp.partition)
            self.stats.partitions[tp.partition] = (pos, None)
            if pos > 0 and fp is not None:
                self._verifier.expect(tp, fp)
                consumer.seek(tp, fp.offset)
            elif pos > 0:
                consumer.seek(tp, pos)
            else:
                await consumer.seek_to_beginning(tp)

    async def _rebuild(self, why: str) -> None:
        logger.warning(W_REBUILD, self.qdef.name, self.source_topic, why)
        self.stats.rebuilds += 1
        await self._drain()
        assert self._state is not None
        self._state.reset()
        self._compile()
        await self._seek_to_state()

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
            logger.info(
                "query %s: running (%s, %s -> %s)",
                self.qdef.name,
                self.stats.kind,
                self.source_topic,
                self.qdef.sink_topic,
            )
            while not self.should_stop:
                try:
                    await self._step()
                except StateMismatch as exc:
                    await self._rebuild(str(exc))
                except OffsetOutOfRangeError as exc:
                    if not self.qdef.stateful:
                        raise
                    await self._rebuild(f"offset out of range: {exc}")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.stats.state, self.stats.error = "failed", f"{type(exc).__name__}: {exc}"
            logger.exception("query %s failed", self.qdef.name)
            await self.crash(exc)

    async def _step(self) -> None:
        consumer, processor = self._consumer, self.processor
        assert consumer is not None
        assert processor is not None
        fetched = await consumer.getmany(timeout_ms=200, max_records=self.config.max_records)
        if self._state is not None:
            # A topic that ends before the offset the state reflects is not the one it came from
            # (a fetch past the end may just come back empty: check on every step).
            for tp in self._tps:
                pos = self.stats.partitions.get(tp.partition, (0, None))[0]
                Verifier.check_highwater(tp, consumer.highwater(tp), pos)
        if not fetched:
            self._update_lag()
            await self.delivery.commit_if_idle()
            return
        started = time.monotonic()
        records: list[Any] = []
        verify = self._verifier.check if self._verifier.pending else None
        for tp, msgs in fetched.items():
            records.extend(msgs if verify is None else verify(tp, msgs))
        counts = processor.run(records, self.output)
        state_batch = self._state_batch(counts)
        futures = await self.output.flush()
        offsets = {TopicPartition(rec.topic, p): rec.offset + 1 for p, rec in counts.last.items()}
        await self.delivery.put(Inflight(futures, offsets, state_batch, started))
        stats = self.stats
        stats.records_in += counts.records_in
        stats.records_out += counts.records_out
        stats.dead_letters += counts.dead_letters
        stats.tombstones += counts.tombstones
        stats.batches += 1
        for tp, off in offsets.items():
            stats.partitions[tp.partition] = (off, consumer.highwater(tp))

    def _state_batch(self, counts: BatchCounts) -> StoreBatch | None:
        state, query = self._state, self.query
        if state is None or query is None:
            return None
        return state.batch(query.dirty_state(), counts.last)

    def _update_lag(self) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        for tp in consumer.assignment():
            pos, _ = self.stats.partitions.get(tp.partition, (0, None))
            hw = consumer.highwater(tp)
            if hw is not None:
                self.stats.partitions[tp.partition] = (pos, hw)

    @Service.task
    async def _committer(self) -> None:
        await self.delivery.run(lambda: self.should_stop)

    async def _drain(self) -> None:
        await self.delivery.drain()

    @Service.task
    async def _summary(self) -> None:
        last, last_t = 0, time.monotonic()
        while not self.should_stop:
            await self.sleep(self.config.log_interval)
            now = time.monotonic()
            s = self.stats
            if s.records_in != last:
                rate = (s.records_in - last) / max(now - last_t, 1e-9)
                logger.info(
                    I_SUMMARY, s.name, s.records_in, rate, s.records_out, s.dead_letters, s.lag
                )
            last, last_t = s.records_in, now

    async def on_stop(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drain(), 10)
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()
        if self._state is not None:
            self._state.close()
        if self.query is not None:
            self.query.close()
        for cached in self._cached:
            cached.close()
        if self.stats.state != "failed":
            self.stats.state = "stopped"


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Before partitions move to another worker, commit what was acknowledged."""

    def __init__(self, agent: QueryAgent) -> None:
        self.agent = agent

    async def on_partitions_revoked(self, revoked: Any) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.agent._drain(), 30)
        for tp in revoked:
            self.agent.stats.partitions.pop(tp.partition, None)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        logger.info(
            "query %s: assigned %s",
            self.agent.qdef.name,
            ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(assigned)) or "nothing",
        )
