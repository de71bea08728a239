"""Dead letters read back from their topic for the inspector: the latest records of every
partition, with the reason and source position from their headers (``tables.deadletter``).

Keys and values are the original bytes of a record that could not be processed: anything at
all. They are shown as text when they are UTF-8 (truncated) and as hex otherwise; the pages
escape the text like every other value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tables.deadletter import DeadLetter as Read
from tables.deadletter import read_dead_letters as read_back

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


def parse(letter: Read) -> DeadLetter:
    """A dead letter read back (:mod:`tables.deadletter`) as the pages show it."""
    return DeadLetter(
        reason=letter.reason or "(no reason header)",
        source=letter.source,
        topic=letter.topic,
        partition=None if letter.partition < 0 else letter.partition,
        offset=None if letter.offset < 0 else letter.offset,
        timestamp=None if letter.timestamp < 0 else letter.timestamp,
        key=show_bytes(letter.key),
        value=show_bytes(letter.value),
        dlq_partition=letter.dlq_partition,
        dlq_offset=letter.dlq_offset,
        dlq_timestamp=letter.dlq_timestamp,
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
) -> list[DeadLetter]:
    """The latest ``limit`` dead letters matching ``reason`` (a substring) and ``query``, newest
    first; at most ``SCAN_PER_PARTITION`` records of each partition are read back (by the one
    reader, :func:`tables.deadletter.read_dead_letters`)."""
    read = await read_back(
        bootstrap_servers,
        topic,
        limit=SCAN_PER_PARTITION,
        scan=SCAN_PER_PARTITION,
        timeout=READ_TIMEOUT_S,
    )
    found = [d for d in map(parse, read) if matches(d, reason, query)]
    return found[:limit]
