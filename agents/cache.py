"""Decoded rows of a table, cached in front of it for the queries' hot loop.

A key lookup on a :class:`~tables.reference.ReferenceTable` is a RocksDB read plus a JSON decode
(the stdlib's exact-decimal decoder for tables with DECIMAL columns: ~5 µs). Queries look up
the same keys again and again (a few hundred symbols, the active users), so each agent reads
its tables through this cache: a dict of decoded rows (and of misses), invalidated per key by the
table's change feed. Loaders apply a batch and publish its changes with no await in between, so
a query never sees a row the table no longer holds. Rows are shared, never copied: the SQL
engine only reads them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from tables.keys import key_text
from tables.protocol import Change, ChangeListener, Key, SecondaryIndex, Table, TableStats, Value
from tables.protocol import Unsubscribe as UnsubscribeFn

#: Rows kept per table and agent; the cache starts over when full (hot keys come back at once).
MAX_ROWS = 200_000
_MISS = object()


class CachedTable:
    """``table`` with a read-through cache on :meth:`get`; every other call goes to the table."""

    def __init__(self, table: Table, max_rows: int = MAX_ROWS) -> None:
        self.table = table
        self.max_rows = max_rows
        self._rows: dict[str, Any] = {}
        self._unsubscribe: UnsubscribeFn | None = table.subscribe(self._changed)
        self.hits = 0
        self.misses = 0

    def _changed(self, change: Change) -> None:
        self._rows.pop(change.key, None)

    def close(self) -> None:
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()
        self._rows.clear()

    def get(self, key: Key, default: Value | None = None) -> Value | None:
        if type(key) is not str:
            if type(key) is int:  # the common non-text key; key_text's checks cost 3x more
                key = str(key)
            else:
                try:
                    key = key_text(key)
                except (TypeError, UnicodeError):
                    return default
        rows = self._rows
        value = rows.get(key, _MISS)
        if value is _MISS:
            self.misses += 1
            value = self.table.get(key)
            if len(rows) >= self.max_rows:
                rows.clear()
            rows[key] = value
        else:
            self.hits += 1
        return default if value is None else value

    # -- the rest of the Table protocol, unchanged ---------------------------------------------
    @property
    def name(self) -> str:
        return self.table.name

    @property
    def key_field(self) -> str | None:
        return self.table.key_field

    def contains_key(self, key: Key) -> bool:
        return self.get(key) is not None

    def keys(self) -> list[Key]:
        return self.table.keys()

    def items(self) -> Iterator[tuple[Key, Value]]:
        return self.table.items()

    def __len__(self) -> int:
        return len(self.table)

    def is_empty(self) -> bool:
        return self.table.is_empty()

    def snapshot(self) -> dict[Key, Value]:
        return self.table.snapshot()

    def map_values(self, fn: Callable[[Value], Any]) -> dict[Key, Any]:
        return self.table.map_values(fn)

    def filter(self, predicate: Callable[[Key, Value], bool]) -> dict[Key, Value]:
        return self.table.filter(predicate)

    def subscribe(self, listener: ChangeListener) -> UnsubscribeFn:
        return self.table.subscribe(listener)

    def index(self, field: str) -> SecondaryIndex:
        return self.table.index(field)

    def stats(self) -> TableStats:
        return self.table.stats()

    @property
    def is_ready(self) -> bool:
        return self.table.is_ready

    async def wait_until_ready(self, timeout: float | None = None) -> bool:
        return await self.table.wait_until_ready(timeout)
