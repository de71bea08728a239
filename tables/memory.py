"""An in-memory table: the same protocol, no Kafka. Used by the offline runner and by tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from tables.changes import ChangeFeed
from tables.indexes import HashIndex, IndexRegistry
from tables.keys import key_text
from tables.protocol import Change, ChangeListener, Key, Op, TableStats, Unsubscribe, Value


class MemoryTable:
    """A dict-backed table that publishes changes exactly like the Kafka-backed one.

    Keys are normalized to their text form (:func:`tables.keys.key_text`), as in every table.
    """

    def __init__(self, name: str, key_field: str | None = None, topic: str = "") -> None:
        self._name = name
        self._key_field = key_field
        self._topic = topic or name
        self._rows: dict[Key, Value] = {}
        self._feed = ChangeFeed()
        self._indexes = IndexRegistry(self.items, self._feed.subscribe)
        self._stats = TableStats(name=name, topic=self._topic, ready=True, running=True)

    # -- writes ---------------------------------------------------------------------------------
    def put(self, key: Key, value: Value | None, timestamp: int = 0) -> Change | None:
        """Insert, update or (``value is None``) delete ``key``; returns the change, if any."""
        key = key_text(key)
        old = self._rows.get(key)
        if value is None:
            if key not in self._rows:
                return None
            del self._rows[key]
            change = Change(key, Op.DELETE, None, old, timestamp)
            self._stats.deletes += 1
        elif key in self._rows:
            self._rows[key] = value
            change = Change(key, Op.UPDATE, value, old, timestamp)
            self._stats.updates += 1
        else:
            self._rows[key] = value
            change = Change(key, Op.INSERT, value, None, timestamp)
            self._stats.inserts += 1
        self._stats.last_updated = time.time()
        self._feed.publish(change)
        return change

    def put_row(self, row: dict[str, Any], timestamp: int = 0) -> Change | None:
        """Insert or update a row keyed by its ``key_field``."""
        if self._key_field is None:
            raise ValueError(f"table {self._name!r} has no key field; use put(key, value)")
        return self.put(row[self._key_field], row, timestamp)

    def delete(self, key: Key, timestamp: int = 0) -> Change | None:
        return self.put(key, None, timestamp)

    # -- the Table protocol -----------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._name

    @property
    def key_field(self) -> str | None:
        return self._key_field

    @property
    def topic(self) -> str:
        return self._topic

    def get(self, key: Key, default: Value | None = None) -> Value | None:
        try:
            return self._rows.get(key_text(key), default)
        except TypeError:
            return default

    def contains_key(self, key: Key) -> bool:
        try:
            return key_text(key) in self._rows
        except TypeError:
            return False

    def keys(self) -> list[Key]:
        return list(self._rows)

    def items(self) -> Iterator[tuple[Key, Value]]:
        return iter(list(self._rows.items()))

    def __len__(self) -> int:
        return len(self._rows)

    def is_empty(self) -> bool:
        return not self._rows

    def snapshot(self) -> dict[Key, Value]:
        return dict(self._rows)

    def map_values(self, fn: Callable[[Value], Any]) -> dict[Key, Any]:
        return {k: fn(v) for k, v in self._rows.items()}

    def filter(self, predicate: Callable[[Key, Value], bool]) -> dict[Key, Value]:
        return {k: v for k, v in self._rows.items() if predicate(k, v)}

    def subscribe(self, listener: ChangeListener) -> Unsubscribe:
        return self._feed.subscribe(listener)

    def index(self, field: str) -> HashIndex:
        return self._indexes.get(field)

    def stats(self) -> TableStats:
        self._stats.size = len(self._rows)
        return self._stats

    @property
    def is_ready(self) -> bool:
        return True

    async def wait_until_ready(self, timeout: float | None = None) -> bool:
        return True
