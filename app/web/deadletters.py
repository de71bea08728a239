"""Dead letters for the inspector: read back by :func:`tables.deadletter.read_dead_letters`
(the one module owning their format), filtered, their bytes made showable.

Keys and values are the original bytes of a record that could not be processed: anything at
all. They are shown as text when they are UTF-8 (truncated) and as hex otherwise; the pages
escape the text like every other value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tables.deadletter import DeadLetter, read_dead_letters

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
class DeadLetterView:
    """A dead letter (:class:`tables.deadletter.DeadLetter`) with its bytes made showable."""

    letter: DeadLetter
    key: Shown
    value: Shown

    @classmethod
    def of(cls, letter: DeadLetter) -> DeadLetterView:
        return cls(letter, show_bytes(letter.key), show_bytes(letter.value))

    def as_dict(self) -> dict[str, Any]:
        d = self.letter
        return {
            "reason": d.reason,
            "source": d.source,
            "topic": d.topic,
            "partition": d.partition if d.partition >= 0 else None,
            "offset": d.offset if d.offset >= 0 else None,
            "timestamp": d.timestamp if d.timestamp >= 0 else None,
            "key": self.key.as_dict(),
            "value": self.value.as_dict(),
            "dlq": {
                "partition": d.dlq_partition,
                "offset": d.dlq_offset,
                "timestamp": d.dlq_timestamp,
            },
        }


def matches(letter: DeadLetter, reason: str | None, name: str | None) -> bool:
    """``reason``: a case-insensitive substring of the reason; ``name``: the query's or the
    table's name (or the whole source, ``query:<name>``)."""
    if reason and reason.lower() not in letter.reason.lower():
        return False
    return not name or letter.name == name or letter.source == name


async def dead_letters(
    bootstrap_servers: str,
    topic: str,
    *,
    limit: int,
    reason: str | None = None,
    name: str | None = None,
) -> list[DeadLetterView]:
    """The latest ``limit`` dead letters matching ``reason`` and ``name``, newest first, among
    the newest ``SCAN_PER_PARTITION`` of each partition (read by :mod:`tables.deadletter`)."""
    letters = await read_dead_letters(
        bootstrap_servers,
        topic,
        limit=1_000_000,  # every record scanned: the filters here narrow them
        scan=SCAN_PER_PARTITION,
        timeout=READ_TIMEOUT_S,
    )
    kept = [d for d in letters if matches(d, reason, name)]
    return [DeadLetterView.of(d) for d in kept[:limit]]
