"""Dead letters: every record a table loader or a query cannot use, in one topic, with why and
where. This module owns the record's format, its writing and its reading back.

One dead letter is one record of the dead-letter topic (``Settings.dead_letter_topic``,
``<app_id>-dlq``; created by :class:`tables.registry.TableRegistry` with the table topics):

- **key, value** — the original record's bytes, untouched (a tombstone stays null);
- **headers** — the original record's headers, then ours, always these six in this order:

  ===========================  ====================================================
  ``tablestream.reason``       why: ``late``, ``value is not valid JSON: ...``,
                               ``DivisionByZeroError: ...`` (UTF-8 text)
  ``tablestream.source``       who: ``table:<name>`` or ``query:<name>``
  ``tablestream.topic``        the original record's topic
  ``tablestream.partition``    its partition (decimal text)
  ``tablestream.offset``       its offset (decimal text)
  ``tablestream.timestamp``    its timestamp, epoch ms (decimal text)
  ===========================  ====================================================

Writers: :class:`DeadLetterWriter` for table loaders (awaits the broker's ack before the loader
commits its offsets), :func:`dead_letter_record` for queries, whose output appends it to the
batch (acknowledged before the batch's source offsets commit). Neither is on the hot path: a
record becomes a :class:`~tables.apply.Malformed` only once it failed.

Reader: :func:`read_dead_letters` returns the latest N as :class:`DeadLetter` (the inspector's
page), optionally only those of one reason or one source.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from tables.apply import Malformed
from tables.topics import TopicSpec, topic_partitions

logger = logging.getLogger(__name__)

#: Header names on a dead-letter record; the record's key and value are the original bytes.
H_REASON = "tablestream.reason"
H_SOURCE = "tablestream.source"
H_TOPIC = "tablestream.topic"
H_PARTITION = "tablestream.partition"
H_OFFSET = "tablestream.offset"
H_TIMESTAMP = "tablestream.timestamp"
#: Our headers, in the order they follow the original record's headers.
OUR_HEADERS = (H_REASON, H_SOURCE, H_TOPIC, H_PARTITION, H_OFFSET, H_TIMESTAMP)

#: Records per partition :func:`read_dead_letters` reads back at most (the newest ones).
DEFAULT_SCAN = 1000


def source_of_table(name: str) -> str:
    return f"table:{name}"


def source_of_query(name: str) -> str:
    return f"query:{name}"


def dead_letter_topic_spec(topic: str, partitions: int) -> TopicSpec:
    """The dead-letter topic as the worker creates it (a plain, deleting topic)."""
    return TopicSpec(topic, partitions)


def malformed(topic: str, partition: int, rec: Any, reason: str) -> Malformed:
    """A fetched record (``offset``, ``timestamp``, ``key``, ``value``, maybe ``headers``) that
    failed, as the dead letter it becomes."""
    headers = tuple(getattr(rec, "headers", None) or ())
    return Malformed(
        topic, partition, rec.offset, rec.timestamp, rec.key, rec.value, reason, headers
    )


#: Characters of a reason kept in its header: a reason quoting a hostile value stays small.
MAX_REASON_CHARS = 1000


def _cut(reason: str) -> str:
    if len(reason) <= MAX_REASON_CHARS:
        return reason
    return f"{reason[: MAX_REASON_CHARS - 30]}... ({len(reason)} characters)"


def dead_letter_headers(item: Malformed, source: str) -> list[tuple[str, bytes]]:
    """The original headers, then ours (``OUR_HEADERS`` order)."""
    return [
        *item.headers,
        (H_REASON, _cut(item.reason).encode("utf-8", "replace")),
        (H_SOURCE, source.encode()),
        (H_TOPIC, item.topic.encode()),
        (H_PARTITION, str(item.partition).encode()),
        (H_OFFSET, str(item.offset).encode()),
        (H_TIMESTAMP, str(item.timestamp).encode()),
    ]


def dead_letter_record(
    item: Malformed, source: str
) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """(key, value, headers) of the dead letter of ``item``."""
    return item.key, item.value, dead_letter_headers(item, source)


class DeadLetterWriter:
    """Sends malformed records to ``topic`` through a started aiokafka producer.

    ``send`` returns when the broker acknowledged every record, so a loader that commits its
    offsets afterwards never skips a record that is in neither the table nor the dead-letter topic.
    """

    def __init__(self, producer: Any, topic: str) -> None:
        self.producer = producer
        self.topic = topic

    async def send(self, items: Sequence[Malformed], source: str) -> None:
        futures = []
        for item in items:
            logger.warning(
                "dead letter from %s: %s[%d]@%d: %s",
                source,
                item.topic,
                item.partition,
                item.offset,
                item.reason,
            )
            key, value, headers = dead_letter_record(item, source)
            futures.append(await self.producer.send(self.topic, value, key=key, headers=headers))
        if futures:
            await asyncio.gather(*futures)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead letter read back: why, who, where the original was, its bytes and headers, and
    where the dead letter itself sits (``dlq_*``)."""

    reason: str
    source: str
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    dlq_partition: int
    dlq_offset: int
    dlq_timestamp: int

    @property
    def kind(self) -> str:
        """``table`` or ``query`` (the part of ``source`` before the colon)."""
        return self.source.partition(":")[0]

    @property
    def name(self) -> str:
        """The table's or the query's name."""
        return self.source.partition(":")[2]

    @classmethod
    def from_record(cls, rec: Any) -> DeadLetter:
        """From a consumed dead-letter record; headers we did not write stay the original's."""
        headers = list(rec.headers or ())
        ours = {k: v for k, v in headers if k in OUR_HEADERS}  # the last of each wins
        tail = [k for k, _ in headers[-len(OUR_HEADERS) :]]
        original = headers[: -len(OUR_HEADERS)] if tail == list(OUR_HEADERS) else headers

        def text(name: str) -> str:
            raw: bytes = ours.get(name, b"")
            return raw.decode("utf-8", "replace")

        def number(name: str) -> int:
            value = text(name)
            return int(value) if value.lstrip("-").isdigit() else -1

        return cls(
            reason=text(H_REASON),
            source=text(H_SOURCE),
            topic=text(H_TOPIC),
            partition=number(H_PARTITION),
            offset=number(H_OFFSET),
            timestamp=number(H_TIMESTAMP),
            key=rec.key,
            value=rec.value,
            headers=tuple(original),
            dlq_partition=rec.partition,
            dlq_offset=rec.offset,
            dlq_timestamp=rec.timestamp,
        )


async def read_dead_letters(
    bootstrap_servers: str,
    topic: str,
    limit: int = 100,
    *,
    reason: str | None = None,
    source: str | None = None,
    scan: int = DEFAULT_SCAN,
    timeout: float = 5.0,
) -> list[DeadLetter]:
    """The newest ``limit`` dead letters of ``topic``, newest first.

    ``reason``/``source`` keep only the dead letters whose reason starts with it (``late``,
    ``DivisionByZeroError``) / whose source is it (``query:orders_checked``), among the newest
    ``max(scan, limit)`` records of each partition. Reads without a consumer group; the end of
    each partition comes from a fetch's high-watermark (``end_offsets()`` is wrong on some
    brokers). An absent topic gives an empty list.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        parts = sorted(await topic_partitions(consumer, topic))
        tps = [TopicPartition(topic, p) for p in parts]
        if not tps:
            return []
        consumer.assign(tps)
        found = await _read_tails(consumer, tps, max(scan, limit), timeout)
    finally:
        await consumer.stop()
    letters = [DeadLetter.from_record(r) for r in found]
    if reason is not None:
        letters = [d for d in letters if d.reason.startswith(reason)]
    if source is not None:
        letters = [d for d in letters if d.source == source]
    letters.sort(key=lambda d: (d.dlq_timestamp, d.dlq_offset), reverse=True)
    return letters[:limit]


async def _read_tails(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], scan: int, timeout: float
) -> list[Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    await consumer.seek_to_beginning(*tps)
    out: list[Any] = []
    # A first fetch tells each partition's high-watermark; then each is read from hw - scan.
    ends: dict[TopicPartition, int] = {}
    while len(ends) < len(tps) and loop.time() < deadline:
        batch = await consumer.getmany(*tps, timeout_ms=200, max_records=1)
        for tp in tps:
            hw = consumer.highwater(tp)
            if hw is not None and tp not in ends:
                ends[tp] = hw
        out.extend(r for recs in batch.values() for r in recs)
    out.clear()  # read again below from the right place, in order
    for tp, end in ends.items():
        consumer.seek(tp, max(0, end - scan))
    pending = {tp for tp, end in ends.items() if end > 0}
    while pending and loop.time() < deadline:
        batch = await consumer.getmany(*pending, timeout_ms=200)
        for tp, recs in batch.items():
            out.extend(r for r in recs if r.offset < ends[tp])
        pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
    return out
