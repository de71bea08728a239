"""Dead letters read back from their topic for the inspector: the latest records of every
partition, with the reason and source position from their headers (``tables.deadletter``).

Keys and values are the original bytes of a record that could not be processed: anything at
all. They are shown as text when they are UTF-8 (truncated) and as hex otherwise; the pages
escape the text like every other value.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from tables.deadletter import H_OFFSET, H_PARTITION, H_REASON, H_SOURCE, H_TIMESTAMP, H_TOPIC

#: Characters of a key or value shown; bytes shown as hex when not text.
TEXT_MAX = 2000
HEX_MAX = 256
#: Records read back per partition before filtering: a filter narrows these.
SCAN_PER_PARTITION = 2000
READ_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Shown:
    """A key or value as shown: ``text`` is either the decoded text or the hex digits."""

    text: str
    encoding: str  # "utf-8" | "hex" | "null"
    size: int
    truncated: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "encoding": self.encoding,
            "bytes": self.size,
            "truncated": self.truncated,
        }


def show_bytes(data: bytes | None) -> Shown:
    if data is None:
        return Shown("", "null", 0, False)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(c.isprintable() or c in "\n\r\t" for c in text[:TEXT_MAX]):
        return Shown(text[:TEXT_MAX], "utf-8", len(data), len(text) > TEXT_MAX)
    return Shown(data[:HEX_MAX].hex(" "), "hex", len(data), len(data) > HEX_MAX)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    reason: str
    #: Who sent it: ``query:<name>`` or ``table:<name>``.
    source: str
    topic: str
    partition: int | None
    offset: int | None
    timestamp: int | None
    key: Shown
    value: Shown
    #: Where the dead letter itself is: its own partition and offset in the dead-letter topic.
    dlq_partition: int
    dlq_offset: int
    dlq_timestamp: int

    @property
    def query(self) -> str | None:
        kind, _, name = self.source.partition(":")
        return name if kind == "query" else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "source": self.source,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp": self.timestamp,
            "key": self.key.as_dict(),
            "value": self.value.as_dict(),
            "dlq": {
                "partition": self.dlq_partition,
                "offset": self.dlq_offset,
                "timestamp": self.dlq_timestamp,
            },
        }


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def parse(record: Any) -> DeadLetter:
    headers = {k: v.decode("utf-8", "replace") for k, v in (record.headers or ())}
    return DeadLetter(
        reason=headers.get(H_REASON, "(no reason header)"),
        source=headers.get(H_SOURCE, ""),
        topic=headers.get(H_TOPIC, ""),
        partition=_int(headers.get(H_PARTITION)),
        offset=_int(headers.get(H_OFFSET)),
        timestamp=_int(headers.get(H_TIMESTAMP)),
        key=show_bytes(record.key),
        value=show_bytes(record.value),
        dlq_partition=record.partition,
        dlq_offset=record.offset,
        dlq_timestamp=record.timestamp,
    )


def matches(letter: DeadLetter, reason: str | None, query: str | None) -> bool:
    if reason and reason.lower() not in letter.reason.lower():
        return False
    return not query or letter.source.partition(":")[2] == query or letter.source == query


async def read_dead_letters(
    bootstrap_servers: str,
    topic: str,
    *,
    limit: int,
    reason: str | None = None,
    query: str | None = None,
    client_id: str = "tablestream-inspector",
) -> list[DeadLetter]:
    """The latest ``limit`` dead letters matching ``reason`` (a substring) and ``query``, newest
    first; at most ``SCAN_PER_PARTITION`` records of each partition are read back."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        group_id=None,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        await consumer.topics()  # metadata: the topic's partitions
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        begins = await consumer.beginning_offsets(tps)
        todo = {}
        for tp in tps:
            start = max(begins[tp], ends[tp] - SCAN_PER_PARTITION)
            if start < ends[tp]:
                consumer.seek(tp, start)
                todo[tp] = ends[tp]
        found: list[DeadLetter] = []
        deadline = time.monotonic() + READ_TIMEOUT_S
        while todo and time.monotonic() < deadline:
            batch = await consumer.getmany(*todo, timeout_ms=200)
            for tp, records in batch.items():
                found += [d for d in map(parse, records) if matches(d, reason, query)]
                if records and records[-1].offset + 1 >= todo.get(tp, 0):
                    todo.pop(tp, None)
            await asyncio.sleep(0)
    finally:
        await consumer.stop()
    found.sort(key=lambda d: (d.dlq_timestamp, d.dlq_offset), reverse=True)
    return found[:limit]
