"""Stage 1 of a stateful query: source records → the repartition topic, placed by group key.

A stateful query (GROUP BY, windows) runs in two stages, as Kafka Streams' sub-topologies do:

1. this one reads the source through the consumer group ``<app_id>-<query>``, computes each
   record's group key from the record alone (:meth:`sql.query.CompiledQuery.partition_key`) and
   appends the record — its original key, value bytes and timestamp, nothing re-encoded — to
   ``<app_id>-<query>-repartition``, in the partition Kafka's default partitioner gives the
   group key's bytes. So every record of a group lands in one partition, in source order.
   A record whose key cannot be computed (not JSON, a failing CAST) is a dead letter here, with
   the source topic, partition and offset. Source offsets are committed to the group once the
   repartition records are acknowledged (:mod:`agents.delivery`);
2. :mod:`agents.stateful` aggregates each repartition partition in its own task.

The record keeps its own key (the query may read ``_key``, dead letters carry it): the group key
decides only the partition. A header ``tablestream.origin`` holds the source partition and offset,
so the aggregation stage can skip the copies a crash or a rebalance makes stage 1 write again
(it re-reads from its last committed offset): aggregates count every source record once.
"""

from __future__ import annotations

import functools
import logging
import struct
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import orjson

from agents.agent import AgentConfig, Processor, QueryAgent
from agents.codec import DecodeError, Decoder, encode_row
from agents.delivery import Inflight
from agents.pipeline_model import QueryDef, repartition_topic
from agents.process import (
    BatchCounts,
    DeadLetters,
    PerPartition,
    RawRecord,
    internal_error,
    reason_of,
)
from agents.transactional import mark_in_transactions
from agents.watermarks import H_WATERMARK, MARK_INTERVAL_S, Mark, SkewPause, SourceTimes, ended
from core import gcpause
from core.fetch import highwater
from sql import CompiledQuery, GroupKey, SqlRuntimeError
from tables.deadletter import source_of_query
from tables.keys import key_text

logger = logging.getLogger(__name__)

#: Header of a repartition record: the source partition and offset it copies.
H_ORIGIN = "tablestream.origin"
_ORIGIN = struct.Struct(">iq")
E_KEY_VALUE = "cannot partition by a group key holding {value!r}: {error}"
#: A record's event time from its decoded value and timestamp (``CompiledQuery.event_time``).
EventTime = Callable[[Mapping[str, Any], int | None], int | None]


def pack_origin(partition: int, offset: int) -> bytes:
    return _ORIGIN.pack(partition, offset)


def origin_of(headers: Sequence[tuple[str, bytes]] | None) -> tuple[int, int] | None:
    """(source partition, source offset) of a repartition record; None without the header."""
    if not headers:
        return None
    for name, value in headers:
        if name == H_ORIGIN and len(value) == _ORIGIN.size:
            p, o = _ORIGIN.unpack(value)
            return p, o
    return None


def _canonical(v: Any) -> Any:
    # Values the aggregate puts in one group (5, 5.0, Decimal("5.00")) must share a partition:
    # the text form table keys use. Other types (dates, lists) by their JSON form.
    if v is None:
        return None
    try:
        return key_text(v)
    except TypeError:
        return encode_row(v).decode()


def group_key_bytes(key: tuple[Any, ...]) -> bytes:
    """The bytes partitioning a group key: one column as the sink key's text (so a single-column
    sink with as many partitions is co-partitioned with the repartition topic), several as a JSON
    array; NULL as the empty key. Raises TypeError or ValueError for a value with no text form."""
    if len(key) == 1:
        v = _canonical(key[0])
        return b"" if v is None else v.encode("utf-8")
    return orjson.dumps([_canonical(v) for v in key])


class RepartitionOutput(DeadLetters, Protocol):
    """What stage 1 writes to (:class:`agents.sink.Output`)."""

    def partition(self, topic: str, key: bytes | None) -> int: ...

    def append(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
        timestamp: int | None = None,
    ) -> None: ...


class RepartitionProcessor(PerPartition[RepartitionOutput]):
    """Runs source records of one query into its repartition topic (a batch at a time)."""

    def __init__(
        self,
        key: GroupKey,
        decode: Decoder,
        *,
        name: str,
        topic: str,
        dead_letter_topic: str,
        event_time: EventTime | None = None,
        times: SourceTimes | None = None,
    ) -> None:
        self.key = key
        #: Windowed: each written record's event time goes to ``times`` (:mod:`agents.watermarks`).
        self.event_time = event_time
        self.times = times
        #: Windowed: writes :meth:`SourceTimes.first_mark` to the output (set by the agent, which
        #: knows the source's partitions).
        self.first_mark: Callable[[int, RepartitionOutput], None] | None = None
        self.decode = decode
        self.name = name
        self.topic = topic
        self.dead_letter_topic = dead_letter_topic
        self.source = source_of_query(name)
        #: Present for the agent's sake (:class:`agents.process.BatchProcessor` has it): the
        #: partition here is always the group key's.
        self.keep_partition = False

    def run_partition(
        self,
        topic: str,
        partition: int,
        records: Sequence[RawRecord],
        output: RepartitionOutput,
        counts: BatchCounts,
    ) -> None:
        """The records of one source partition, in offset order, added to ``counts``."""
        if not records:
            return
        with gcpause.paused():
            self._run(topic, partition, records, output, counts)

    def _run(
        self,
        topic: str,
        partition: int,
        records: Sequence[RawRecord],
        output: RepartitionOutput,
        counts: BatchCounts,
    ) -> None:
        key_of, decode, target = self.key, self.decode, self.topic
        place, append, pack = output.partition, output.append, _ORIGIN.pack
        event_time, times = self.event_time, self.times
        if times is not None and self.first_mark is not None and partition not in times.sources:
            self.first_mark(partition, output)
        n_out = 0
        for rec in records:
            value = rec.value
            if value is None:
                counts.tombstones += 1
                continue
            try:
                raw = rec.key
                row = decode(value)
                gk = key_of(
                    row,
                    key=raw,  # bytes: decoded only if the key reads ``_key``
                    timestamp=rec.timestamp,
                    partition=partition,
                    offset=rec.offset,
                )
                try:
                    kb = group_key_bytes(gk)
                except (TypeError, ValueError) as exc:
                    raise _KeyError(E_KEY_VALUE.format(value=gk, error=exc)) from exc
                headers = [(H_ORIGIN, pack(partition, rec.offset))]
                append(target, raw, value, headers, place(target, kb), rec.timestamp)
                n_out += 1
                if times is not None and event_time is not None:
                    times.observe(partition, event_time(row, rec.timestamp))
            except DecodeError as err:
                self._dead_letter(topic, partition, rec, err.reason, output, counts)
            except (SqlRuntimeError, _KeyError) as err:
                self._dead_letter(topic, partition, rec, reason_of(err), output, counts)
            except Exception as err:
                reason = internal_error(self.name, topic, partition, rec.offset, err)
                self._dead_letter(topic, partition, rec, reason, output, counts)
        counts.last[partition] = records[-1]
        counts.records_in += len(records)
        counts.records_out += n_out


class _KeyError(Exception):
    pass


class RepartitionAgent(QueryAgent):
    """Stage 1 of a repartitioned stateful query: the source (consumer group ``<app_id>-<query>``)
    into the repartition topic; its counters show in ``/queries/`` as ``<query>-repartition``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.grouped = True
        self._times: SourceTimes | None = None
        self._next_marks = 0.0
        self._skew = SkewPause()

    @staticmethod
    def sink_topic_of(query: QueryDef, config: AgentConfig) -> str:
        return repartition_topic(config.app_id, query.name)

    @staticmethod
    def stats_name(query: QueryDef) -> str:
        return f"{query.name}-repartition"

    @staticmethod
    def kind(query: QueryDef) -> str:
        return "repartition"

    def make_processor(self, query: CompiledQuery) -> Processor:
        key = query.partition_key()
        cfg = self.config
        windowed = query.is_windowed and cfg.watermark_per_source
        self._times = (
            SourceTimes(cfg.watermark_idle_timeout, cfg.watermark_max_skew_ms) if windowed else None
        )
        logger.info(
            "query %s: repartitioned by (%s) through %r",
            self.qdef.name,
            ", ".join(key.expressions),
            self.sink_topic,
        )
        # Only the group key runs here: the query's maintained structures are not needed.
        query.close()
        processor = RepartitionProcessor(
            key,
            self.builder.decoder(),
            name=self.qdef.name,
            topic=self.sink_topic,
            dead_letter_topic=self.config.dead_letter_topic,
            event_time=query.event_time if windowed else None,
            times=self._times,
        )
        processor.first_mark = self._first_mark
        return processor

    async def _step(self) -> None:
        await super()._step()
        if self._times is not None:
            await self._watermarks(self._times)

    async def _watermarks(self, times: SourceTimes) -> None:
        """Markers due to every repartition partition, then pause what runs ahead."""
        consumer, txns = self._consumer, self.txns
        if consumer is None:
            return
        now = time.monotonic()
        if now < self._next_marks:
            return
        self._next_marks = now + MARK_INTERVAL_S / 2
        # Under exactly-once, only partitions with a live producer (a fenced one is not ours).
        owned = {
            tp.partition: tp for tp in consumer.assignment() if txns is None or tp in txns.tasks
        }
        times.forget([p for p in times.sources if p not in owned])
        n = len(consumer.partitions_for_topic(self.source_topic) or ())
        done = ended(self.stats.partitions, owned, functools.partial(highwater, consumer))
        marks = times.marks(n, done, now)
        if marks and txns is None:
            for m in marks:
                self._append_mark(m)
            futures = await self.output.flush()
            await self.delivery.put(Inflight(futures, {}, [], now))
        elif marks and txns is not None:
            await mark_in_transactions(self, txns, consumer, owned, marks)
        self._skew.apply(consumer, times.ahead(), owned)

    def _first_mark(self, partition: int, output: RepartitionOutput) -> None:
        times, consumer = self._times, self._consumer
        if times is None or consumer is None:
            return
        n = len(consumer.partitions_for_topic(self.source_topic) or ())
        mark = times.first_mark(partition, n)
        if mark is not None:
            self._append_mark(mark, output)

    def _append_mark(self, mark: Mark, output: RepartitionOutput | None = None) -> None:
        out, sink = output or self.output, self.sink_topic
        for rp in range(self.output.partitions(sink)):
            out.append(sink, None, None, [(H_WATERMARK, mark.pack())], rp)
