"""In-memory stand-ins for what a batch processor reads and writes: a fetched record (``Rec``)
and an output that keeps what it is given (``Collect``) — shared by the processor, source and
SQL tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tables.apply import Malformed
from tables.deadletter import dead_letter_headers


@dataclass
class Rec:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    topic: str = "orders"
    timestamp: int = 1_000


@dataclass
class TableRec:
    """A fetched record of a table's topic, as the loader's apply steps take it."""

    key: bytes | None
    value: bytes | None
    offset: int
    partition: int = 0
    topic: str = "t"
    timestamp: int = 1000


class Collect:
    """An output that keeps what it is given."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None, bytes | None, dict[str, bytes]]] = []

    def append(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> None:
        self.records.append((topic, key, value, dict(headers or [])))

    def dead_letter(self, topic: str, item: Malformed, source: str) -> None:
        self.append(topic, item.key, item.value, dead_letter_headers(item, source))

    def appender(self, topic: str, partition: int) -> Callable[[bytes | None, bytes | None], None]:
        return lambda key, value: self.append(topic, key, value, None, partition)
