"""The loader: a mode Service that follows a table's topic into its store.

It assigns partitions by hand (no consumer group: a global table reads every partition on every
worker), resumes each partition from the offset stored with the rows, and verifies that offset
still fits the topic before trusting local state. "Caught up" is decided from the high-watermark
each fetch response carries, never from ``end_offsets()`` (wrong on some brokers).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import OffsetOutOfRangeError
from mode import Service

from core import gcpause
from core.errors import TablestreamError

# aiokafka's fetched record batches iterated in C, no ConsumerRecord per record (the agents'
# fetch path; a third of a cold restore's CPU went to ConsumerRecord objects).
from core.fetch import getmany_raw, stable_end, supported
from core.retry import StartupRetry
from core.stop import finish, stop_consumer
from tables.apply import Applier, Parts
from tables.deadletter import DeadLetterWriter, source_of_table
from tables.local_state import LocalStateMismatch, stale_reason, verify_resumed
from tables.protocol import PartitionStats
from tables.skew import PartitionSkew
from tables.store import Fingerprint, TableStore
from tables.tail import retractions
from tables.topics import topic_partitions

if TYPE_CHECKING:
    from tables.reference import TableState

logger = logging.getLogger(__name__)

E_NO_TOPIC = "topic {topic!r} of table {table!r} does not exist on {servers}"
COMPACT_AFTER_RECORDS = 100_000
#: How often age retention sweeps a slice of a versioned table's history (between batches).
SWEEP_INTERVAL_S = 1.0
W_REBUILD = "table %r: local state does not fit topic %r (%s); rebuilding from the beginning"
W_INTERRUPTED = "a restore was interrupted before its rows were flushed"


class TopicMissingError(TablestreamError):
    """A table's topic is not on the broker."""


ConsumerFactory = Callable[[], AIOKafkaConsumer]


class TableLoader(Service):
    """Applies a topic's records to a :class:`~tables.reference.TableState`, forever."""

    def __init__(
        self,
        state: TableState,
        consumer_factory: ConsumerFactory,
        dead_letters: DeadLetterWriter | None = None,
        fetch_max_records: int = 10_000,
        partitions: set[int] | None = None,
        read_committed: bool = False,
        bootstrap_servers: str | None = None,
        max_skew_ms: int | None = 300_000,
        **kwargs: Any,
    ) -> None:
        self.tstate = state
        self._servers = bootstrap_servers
        self._consumer_factory = consumer_factory
        self._dead_letters = dead_letters
        self._fetch_max_records = fetch_max_records
        self._wanted = partitions
        #: The consumer reads with isolation_level=read_committed: caught up at the last stable
        #: offset (records of a transaction still open are not readable yet).
        self._read_committed = read_committed
        self._consumer: AIOKafkaConsumer | None = None
        self._raw_fetch = False
        self._tps: list[TopicPartition] = []
        self._verify: dict[TopicPartition, Fingerprint] = {}
        self._target: dict[TopicPartition, int] = {}
        self._compaction: asyncio.Future[None] | None = None
        self._next_sweep = 0.0
        self._next_synced = 0.0
        #: How far (record timestamp, ms) one partition may be applied ahead of the slowest.
        self._skew = PartitionSkew(max_skew_ms)
        self._applier = Applier(
            state.spec.key_field, state.decode, state.versions, state.spec.check
        )
        super().__init__(**kwargs)

    @property
    def label(self) -> str:
        return f"TableLoader[{self.tstate.spec.name}]"

    async def on_start(self) -> None:
        state = self.tstate
        state.store.open(bulk_if_new=True)
        if state.store.restore_interrupted():
            logger.warning(W_REBUILD, state.spec.name, state.spec.topic, W_INTERRUPTED)
            state.store.destroy()
            state.store.open(bulk_if_new=True)
        stored_topic = state.store.topic()
        if stored_topic is not None and stored_topic != state.spec.topic:
            logger.warning(W_REBUILD, state.spec.name, state.spec.topic, f"was {stored_topic!r}")
            state.store.destroy()
            state.store.open(bulk_if_new=True)
        stored_mode, mode = state.store.history_mode(), _history_mode(state)
        if state.store.count and stored_mode != mode:
            # Rows kept without history cannot answer for the past (and stale history would).
            logger.warning(W_REBUILD, state.spec.name, state.spec.topic, f"history {mode!r}")
            state.store.destroy()
            state.store.open(bulk_if_new=True)
        state.store.set_topic(state.spec.topic)
        state.store.set_history_mode(mode)
        if not state.store.positions():
            state.store.begin_restore()  # nothing applied yet: a cold restore
        self._consumer = self._consumer_factory()
        # Tried again while the broker is away (lost between the worker's BrokerGate and here).
        retry = StartupRetry(self._servers or "?", self)
        await retry(f"start table {state.spec.name!r}'s consumer", self._consumer.start)
        self._raw_fetch = supported(self._consumer)
        await self._assign()

    async def on_stop(self) -> None:
        # The store is closed whatever the consumer's stop does (core.stop: it fails while the
        # broker is away or slow): left open, the next table on its directory failed, locked.
        consumer, self._consumer = self._consumer, None
        try:
            if consumer is not None:
                await stop_consumer(consumer, self.label)
        finally:
            await self._close_store()

    async def _close_store(self) -> None:
        """Flush a restore stopped half-way (what was applied is kept) and close the store, even
        if this stop is cancelled meanwhile: the threads writing it are waited for first."""
        store = self.tstate.store
        try:
            await self._compacted()
            if store.end_restore():
                await finish(asyncio.ensure_future(asyncio.to_thread(store.persist_restore)))
        finally:
            store.close()  # no thread of ours works on it any more (finish waited for each)

    async def _compacted(self) -> None:
        """Wait for a running compaction: closing RocksDB under its thread is not allowed."""
        compaction, self._compaction = self._compaction, None
        if compaction is not None:
            await finish(compaction)

    async def _assign(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        topic = self.tstate.spec.topic
        partitions = await topic_partitions(consumer, topic)
        if not partitions:
            raise TopicMissingError(
                E_NO_TOPIC.format(
                    topic=topic, table=self.tstate.spec.name, servers=consumer._client.hosts
                ),
                topic=topic,
            )
        wanted = sorted(p for p in partitions if self._wanted is None or p in self._wanted)
        self._tps = [TopicPartition(topic, p) for p in wanted]
        consumer.assign(self._tps)
        await self._seek_to_stored()
        stale = await self._stale()
        if stale:
            await self._rebuild(stale)

    async def _stale(self) -> str | None:
        return await stale_reason(self.tstate.store, self._servers, self.tstate.spec.topic)

    async def _seek_to_stored(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        positions = self.tstate.store.positions()
        fingerprints = self.tstate.store.fingerprints()
        self._verify.clear()
        self._target.clear()
        stats = self.tstate.stats.partitions
        stats.clear()
        for tp in self._tps:
            position = positions.get(tp.partition, 0)
            stats[tp.partition] = PartitionStats(position=position)
            fp = fingerprints.get(tp.partition)
            if position > 0 and fp is not None:
                # Re-read the last applied record: it must still be there, byte for byte.
                self._verify[tp] = fp
                consumer.seek(tp, fp.offset)
            elif position > 0:
                consumer.seek(tp, position)
            else:
                # The log start, not offset 0: retention may have removed the first records,
                # and a seek below the log start fails again (a rebuild loop, never loading).
                await consumer.seek_to_beginning(tp)
        if not self._tps:
            if self.tstate.store.end_restore():
                self.tstate.store.persist_restore()  # nothing was written: a quick flush
            self.tstate.set_ready()

    @Service.task
    async def _follow(self) -> None:
        while not self.should_stop:
            try:
                if self.tstate.store.restoring:
                    # No periodic full collection (~5% of a 300k-row restore's CPU): what a
                    # batch leaves in cycles is young, collected by the thresholds once resumed.
                    with gcpause.paused():
                        await self._step()
                else:
                    await self._step()
                # A fetch answered in full is read without suspending: without this, a restore
                # held the event loop to its end (other tasks, and the fetcher itself, which
                # sends the next fetch and reads its answer while the rows are written).
                await asyncio.sleep(0)
            except LocalStateMismatch as exc:
                await self._rebuild(str(exc))
            except OffsetOutOfRangeError as exc:
                await self._rebuild(f"offset out of range: {exc}")

    async def _step(self) -> None:
        consumer = self._consumer
        if consumer is None:
            await asyncio.sleep(0.05)
            return
        fetched: dict[TopicPartition, Any] = (
            await getmany_raw(consumer, 200, self._fetch_max_records)
            if self._raw_fetch
            else await consumer.getmany(timeout_ms=200, max_records=self._fetch_max_records)
        )
        verified = verify_resumed(self._verify, fetched)
        kept = await self._bounded(consumer, verified)
        if any(kept.values()):
            await self._apply([(tp.topic, tp.partition, msgs) for tp, msgs in kept.items()])
        await self._update_progress()

    async def _bounded(
        self, consumer: AIOKafkaConsumer, fetched: dict[TopicPartition, Any]
    ) -> Mapping[TopicPartition, Any]:
        """The fetched records within the allowed skew (:mod:`tables.skew`); the partitions
        ahead are sought back to their first record held back and paused."""
        if len(self._tps) < 2 or not (fetched or self._skew.held):
            # Nothing to bound (an empty fetch still resumes what waits for a partition that
            # has just reached its end).
            return fetched
        if not self._ordered():
            # Nobody sees the order partitions are applied in: the rows end the same. Holding
            # partitions back here cost a cold restore a third of its fetched bytes, sought back
            # and fetched again while the first partitions' times were unknown.
            if self._skew.held:
                consumer.resume(*self._skew.held)
            self._skew.reset()
            return fetched
        # Where each partition stands before this batch: the consumer's position (past
        # transaction markers), less what this batch brings.
        left = set()
        for tp in self._tps:
            highwater = consumer.highwater(tp)
            msgs = fetched.get(tp)
            start = msgs[0].offset if msgs else await consumer.position(tp)
            if highwater is None:
                left.add(tp)
                continue
            end = stable_end(consumer, tp, highwater) if self._read_committed else highwater
            if start < end:
                left.add(tp)
        cut = self._skew.cut(fetched, left.__contains__, self._tps)
        for tp, offset in cut.seek.items():
            consumer.seek(tp, offset)
        if cut.pause:
            consumer.pause(*cut.pause)
        if cut.resume:
            consumer.resume(*cut.resume)
        return cut.keep

    def _ordered(self) -> bool:
        """Whether partitions are kept within the skew: a versioned table's stream time and
        history, and change listeners (indexes, the changes topic, joins), see the order records
        are applied in; a plain table nobody listens to does not (a cold restore, mostly), nor
        one only the web's "latest changes" list follows (a ``last=`` listener)."""
        return self.tstate.versions is not None or bool(self.tstate.feed)

    async def _apply(self, parts: Parts) -> None:
        state = self.tstate
        batch = state.batch()
        feed = state.feed
        # Listeners that keep only the last few changes (the web's list) ask for those alone.
        result = self._applier.apply_parts(parts, state.store, batch, bool(feed), feed.tail)
        if result.malformed:
            state.stats.malformed += len(result.malformed)
            if self._dead_letters is not None:
                await self._dead_letters.send(
                    result.malformed, source=source_of_table(state.spec.name)
                )
        state.commit(batch)  # drops the written keys' cached rows too
        if state.versions is not None and time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + SWEEP_INTERVAL_S
            state.versions.sweep()
        for partition, position in batch.positions.items():
            state.stats.partitions[partition].position = position
        stats = state.stats
        stats.records_read += result.records
        stats.inserts += result.inserts
        stats.updates += result.updates
        stats.deletes += result.deletes
        stats.last_updated = time.time()
        feed.publish_batch(result.changes)
        for hook in state.after_publish:
            await hook()
        state.notify_updated()

    async def _update_progress(self) -> None:
        consumer = self._consumer
        if consumer is None:  # stopping
            return
        stats = self.tstate.stats.partitions
        caught_up = in_sync = True
        for tp in self._tps:
            highwater = consumer.highwater(tp)
            if highwater is None:
                caught_up = in_sync = False
                continue
            stats[tp.partition].highwater = highwater
            if highwater < stats[tp.partition].position:
                raise LocalStateMismatch(
                    f"{tp.topic}[{tp.partition}] ends at {highwater}, "
                    f"before the stored offset {stats[tp.partition].position}"
                )
            end = stable_end(consumer, tp, highwater) if self._read_committed else highwater
            target = self._target.setdefault(tp, end)
            position = await consumer.position(tp)
            if tp in self._verify or position < target:
                caught_up = False
            if position < end:
                in_sync = False
        if in_sync and self._tps and time.monotonic() >= self._next_synced:
            self._next_synced = time.monotonic() + 1.0
            self.tstate.store.set_synced_at(int(time.time() * 1000))
        if caught_up and not self.tstate.is_ready:
            # Written without the write-ahead log so far: flushed to files (off the event loop)
            # before the restore counts as done on disk; readers need only the memtables.
            persist = self.tstate.store.end_restore()
            self.tstate.set_ready()
            logger.info(
                "table %r ready: %d rows, %d records read",
                self.tstate.spec.name,
                self.tstate.store.count,
                self.tstate.stats.records_read,
            )
            # A bulk load leaves overlapping files behind; one compaction makes every later
            # point lookup a single bloom-filtered read (p99 ~6.6 -> ~4 µs at 1M keys).
            compact = self.tstate.stats.records_read >= COMPACT_AFTER_RECORDS
            if persist or compact:
                self._compaction = asyncio.ensure_future(
                    asyncio.to_thread(_settle, self.tstate.store, persist, compact)
                )

    async def _rebuild(self, why: str) -> None:
        state = self.tstate
        logger.warning(W_REBUILD, state.spec.name, state.spec.topic, why)
        feed = state.feed
        if feed or feed.tail:
            # Subscribers derived state from rows that are going away: retract them first.
            # (The rows' iterator is not kept: it holds the database open, and its lock.)
            wanted = None if feed else feed.tail
            feed.publish_batch(retractions(state.store.items(), wanted, state.decode_stored))
        await self._compacted()
        state.store.destroy()  # the history goes with the rows: it is rebuilt from the topic
        state.store.open(bulk_if_new=True)
        state.store.set_topic(state.spec.topic)
        state.store.set_history_mode(_history_mode(state))
        state.store.begin_restore()
        state.reset()
        self._skew.reset()
        if self._consumer is not None and self._tps:
            self._consumer.resume(*self._tps)
        await self._seek_to_stored()


def _settle(store: TableStore, persist: bool, compact: bool) -> None:
    """After a load (in a thread): the restore's rows flushed to files, then compacted."""
    if persist:
        store.persist_restore()
    if compact:
        store.compact()


def _history_mode(state: TableState) -> str:
    return "versioned" if state.versions is not None else "plain"
