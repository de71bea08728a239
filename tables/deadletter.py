"""Dead letters: records that cannot be applied go to a topic with their original bytes and why."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from tables.apply import Malformed

logger = logging.getLogger(__name__)

#: Header names on a dead-letter record; the record's key and value are the original bytes.
H_REASON = "tablestream.reason"
H_TOPIC = "tablestream.topic"
H_PARTITION = "tablestream.partition"
H_OFFSET = "tablestream.offset"
H_TIMESTAMP = "tablestream.timestamp"
H_SOURCE = "tablestream.source"
#: Characters of a reason kept in its header: a reason quoting a hostile value stays small.
MAX_REASON_CHARS = 1000


def _cut(reason: str) -> str:
    if len(reason) <= MAX_REASON_CHARS:
        return reason
    return f"{reason[: MAX_REASON_CHARS - 30]}... ({len(reason)} characters)"


def dead_letter_headers(item: Malformed, source: str) -> list[tuple[str, bytes]]:
    return [
        (H_REASON, _cut(item.reason).encode("utf-8", "replace")),
        (H_TOPIC, item.topic.encode()),
        (H_PARTITION, str(item.partition).encode()),
        (H_OFFSET, str(item.offset).encode()),
        (H_TIMESTAMP, str(item.timestamp).encode()),
        (H_SOURCE, source.encode()),
    ]


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
            futures.append(
                await self.producer.send(
                    self.topic,
                    value=item.value,
                    key=item.key,
                    headers=dead_letter_headers(item, source),
                )
            )
        if futures:
            await asyncio.gather(*futures)
