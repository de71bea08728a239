"""A table's change stream on a topic (``WITH (changes_topic='...')``), as a retract stream.

Every change becomes messages keyed by the table key, JSON values::

    {"table": "prices", "op": "+", "change": "insert", "key": "a", "row": {...},
     "version": 7, "timestamp": 1700000000000,
     "source": {"topic": "prices", "partition": 0, "offset": 41}}

An insert is one ``+`` (the new row), a delete one ``-`` (the old row), an update a ``-`` of the
old row followed by a ``+`` of the new one, with the same version. Summing ``+`` and subtracting
``-`` per key gives the table. A rebuild retracts every row, then inserts them again.

Delivery: the loader waits for the broker's acknowledgement of a batch's changes before it
fetches the next batch. A crash after a batch was stored but before its changes were
acknowledged loses those messages (the table itself stays right).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaProducer

from core import codec
from tables.protocol import Change, Op
from tables.topics import TopicSpec, ensure_topics

logger = logging.getLogger(__name__)


def retractions(table: str, change: Change) -> list[dict[str, Any]]:
    """The retract-stream messages of one change, in order."""
    base = {
        "table": table,
        "change": change.op.value,
        "key": change.key,
        "version": change.version,
        "timestamp": change.timestamp,
        "source": {"topic": change.topic, "partition": change.partition, "offset": change.offset},
    }
    out = []
    if change.op is not Op.INSERT:
        out.append({**base, "op": "-", "row": change.old_value})
    if change.op is not Op.DELETE:
        out.append({**base, "op": "+", "row": change.value})
    return out


class ChangesTopicWriter:
    """Collects a table's changes (a feed listener) and produces them on ``flush()``."""

    def __init__(self, table: str, topic: str, bootstrap_servers: str, partitions: int = 1) -> None:
        self.table = table
        self.topic = topic
        self.bootstrap_servers = bootstrap_servers
        self.partitions = partitions
        self._producer: AIOKafkaProducer | None = None
        self._pending: list[Change] = []
        self.sent = 0

    async def start(self) -> None:
        await ensure_topics(self.bootstrap_servers, [TopicSpec(self.topic, self.partitions)])
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers, acks="all", linger_ms=5
        )
        await self._producer.start()

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await self._flush(producer)
            finally:
                await producer.stop()

    def on_change(self, change: Change) -> None:
        self._pending.append(change)

    async def flush(self) -> None:
        """Send what is pending; returns once the broker acknowledged all of it."""
        if self._producer is not None:
            await self._flush(self._producer)

    async def _flush(self, producer: AIOKafkaProducer) -> None:
        pending, self._pending = self._pending, []
        futures = []
        for change in pending:
            key = str(change.key).encode()
            for message in retractions(self.table, change):
                futures.append(await producer.send(self.topic, codec.dumps(message), key=key))
        if futures:
            await asyncio.gather(*futures)
            self.sent += len(futures)
