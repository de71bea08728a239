"""Fetched records as aiokafka's own C record objects, without a Python object per record.

``AIOKafkaConsumer.getmany`` runs a Python generator step, a method call and a ``ConsumerRecord``
dataclass per record — about 15% of a query's CPU at 80k records/s. Here the record batches the
fetcher already holds are iterated in C (``list.extend`` over a batch), and the consumer's
position is advanced exactly as ``getmany`` would: whole record batches at a time, stopping at
the first batch boundary past ``max_records``.

Under ``read_committed`` batches of aborted transactions are skipped as aiokafka skips them.

The records are ``aiokafka.record`` ``DefaultRecord`` objects (``offset``, ``timestamp``, ``key``,
``value``, ``headers``; no topic or partition: they come grouped by partition). This reaches into
the fetcher's private state, so aiokafka is pinned to a minor version in pyproject.toml and the
whole agent test suite runs through this path; :func:`supported` checks the attributes it needs
and the agent falls back to ``getmany`` when they are missing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.consumer.fetcher import READ_COMMITTED, FetchResult, PartitionRecords
from aiokafka.errors import ConsumerStoppedError, CorruptRecordException

E_CRC = "invalid CRC in a record batch of {tp}"

RawRecords = dict[TopicPartition, list[Any]]


class RawRecord(Protocol):
    """A fetched record without its topic-partition (aiokafka's C record, grouped by partition;
    what :func:`getmany_raw` returns, read by the table loaders and the queries alike)."""

    @property
    def offset(self) -> int: ...

    @property
    def timestamp(self) -> int: ...

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...


def supported(consumer: AIOKafkaConsumer) -> bool:
    """Whether this aiokafka has the fetcher internals :func:`getmany_raw` uses."""
    fetcher = getattr(consumer, "_fetcher", None)
    return (
        fetcher is not None
        and hasattr(fetcher, "_records")
        and hasattr(fetcher, "_wait_consume_future")
        and hasattr(fetcher, "_create_fetch_waiter")
        and hasattr(FetchResult, "check_assignment")
        and hasattr(PartitionRecords, "_consume_aborted_up_to")
        and hasattr(PartitionRecords, "_contains_abort_marker")
        and hasattr(consumer, "_subscription")
        and hasattr(consumer, "_coordinator")
    )


async def getmany_raw(consumer: AIOKafkaConsumer, timeout_ms: int, max_records: int) -> RawRecords:
    """Like ``consumer.getmany(timeout_ms=..., max_records=...)``, records as C objects."""
    if consumer._closed:
        raise ConsumerStoppedError()
    consumer._coordinator.check_errors()
    fetcher = consumer._fetcher
    subscription = consumer._subscription
    timeout = timeout_ms / 1000
    with subscription.fetch_context():
        while True:
            if subscription.reassignment_in_progress:
                await subscription.wait_for_assignment()
            started = time.monotonic()
            drained = _drain(fetcher, max_records)
            if drained or not timeout:
                return drained
            waiter = fetcher._create_fetch_waiter()
            done, pending = await asyncio.wait([waiter], timeout=timeout)
            if not done or fetcher._closed:
                for fut in pending:
                    fut.cancel()
                return {}
            if waiter.done():
                waiter.result()  # authorization errors
            timeout = max(0.0, timeout - (time.monotonic() - started))


def _drain(fetcher: Any, max_records: int) -> RawRecords:
    drained: RawRecords = {}
    buffered = fetcher._records
    for tp in list(buffered):
        result = buffered[tp]
        if type(result) is not FetchResult:
            if drained:
                return drained  # raised on the next call, as aiokafka does
            del buffered[tp]
            fetcher._notify(fetcher._wait_consume_future)
            result.check_raise()
            continue
        out = _take(result, tp, max_records)
        if result._partition_records is None:
            del buffered[tp]
            fetcher._notify(fetcher._wait_consume_future)
        if out:
            drained[tp] = out
            max_records -= len(out)
            if max_records <= 0:
                break
    return drained


def _take(result: Any, tp: TopicPartition, max_records: int) -> list[Any]:
    """Whole record batches of one fetched partition, up to the first past ``max_records``."""
    if not result.has_more() or not result.check_assignment(tp):
        return []
    part = result._partition_records
    records = part._records
    read_committed = part._isolation_level == READ_COMMITTED
    start = part.next_fetch_offset
    out: list[Any] = []
    while records.has_next() and len(out) < max_records:
        batch = records.next_batch()
        if part._check_crcs and not batch.validate_crc():
            raise CorruptRecordException(E_CRC.format(tp=tp))
        if read_committed and _aborted(part, batch):
            part.next_fetch_offset = batch.next_offset
            continue
        if not batch.is_control_batch:
            n = len(out)
            out.extend(batch)
            # A fetch may start inside a batch (the broker returns it whole): skip what was read.
            if n < len(out) and out[n].offset < start:
                out[n:] = [r for r in out[n:] if r.offset >= start]
        part.next_fetch_offset = batch.next_offset
    result._update_position()
    if not records.has_next():
        result._partition_records = None
    return out


def _aborted(part: Any, batch: Any) -> bool:
    """Whether ``batch`` belongs to an aborted transaction (read_committed): aiokafka's own
    bookkeeping (``PartitionRecords._unpack_records``), the list of aborted transactions the
    fetch response carries against the producer ids and abort markers met in order."""
    if batch.producer_id is None:
        return False
    part._consume_aborted_up_to(batch.base_offset)
    if batch.is_control_batch and part._contains_abort_marker(batch):
        part._aborted_producers.discard(batch.producer_id)
    return bool(batch.is_transactional and batch.producer_id in part._aborted_producers)


def highwater(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int | None:
    """The partition's last seen high-watermark; None while it is not assigned.

    ``consumer.highwater`` asserts the assignment. A group rebalance can drop a partition between
    a fetch and the bookkeeping after it (on Apache Kafka, whose rebalances are quick, it does).
    """
    if tp not in consumer.assignment():
        return None
    hw: int | None = consumer.highwater(tp)
    return hw


def stable_end(consumer: AIOKafkaConsumer, tp: TopicPartition, highwater: int) -> int:
    """Where a caught-up read_committed reader of ``tp`` stands: the last stable offset the
    fetch answered, else the high-watermark."""
    lso = consumer.last_stable_offset(tp)
    return lso if lso is not None and 0 <= lso < highwater else highwater


async def still_current(
    consumer: AIOKafkaConsumer, tp: TopicPartition, msgs: Sequence[Any]
) -> bool:
    """Whether records fetched before a lock was taken still follow the consumer's position.

    A rebalance in between may have sought the partition (a task reopened at its stored offset,
    the committed offset): records fetched from where the group's offset reset put it first
    would skip or repeat records.
    """
    return bool(await consumer.position(tp) >= msgs[-1].offset + 1)
