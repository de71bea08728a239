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

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tables import (
    Change,
    ChangeListener,
    Key,
    LocalTable,
    SecondaryIndex,
    StatsLike,
    Value,
    drop_key,
)
from tables import Unsubscribe as UnsubscribeFn
from tables.keys import key_text

#: Rows kept per table and agent; the cache starts over when full (hot keys come back at once).
MAX_ROWS = 200_000
_MISS = object()


class CachedTable:
    """``table`` with a read-through cache on :meth:`get`; every other call goes to the table.

    Only for tables with a change feed (:class:`~tables.protocol.LocalTable`): an external table
    keeps its own cache, with TTLs instead of invalidations (``sources/``)."""

    def __init__(self, table: LocalTable, max_rows: int = MAX_ROWS) -> None:
        self.table = table
        self.max_rows = max_rows
        self._rows: dict[Any, Any] = {}  # text keys, and int keys as probed
        self._unsubscribe: UnsubscribeFn | None = table.subscribe(self._changed)
        #: Reads that went to the table (a hit costs no counting: this is the per-record path).
        self.misses = 0

    def _changed(self, change: Change) -> None:
        # Integer keys are cached under the int the queries probe with, too.
        drop_key(self._rows, change.key)

    def close(self) -> None:
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()
        self._rows.clear()

    def get(self, key: Key, default: Value | None = None) -> Value | None:
        # An int or str probe is its own cache key (an int's text is the table key: no str()
        # per lookup); floats, bools and the rest take the slow path (1.0 == 1 as dict keys,
        # but their key texts may differ).
        tk = type(key)
        if tk is int or tk is str:
            value = self._rows.get(key, _MISS)
            if value is not _MISS:
                return default if value is None else value
        return self._miss(key, default)

    def row_cache(self) -> tuple[dict[Any, Any], object]:
        """For generated code (:mod:`sql.codegen`) to probe the cache inline: the dict of rows by
        int or str probe (None: a known miss) and the marker :meth:`get` is called on (a key
        not cached). The dict stays the same object for the cache's life."""
        return self._rows, _MISS

    def _miss(self, key: Key, default: Value | None) -> Value | None:
        rows = self._rows
        tk = type(key)
        if tk is int or tk is str:
            text = key if tk is str else str(key)
        else:
            try:
                text = key = key_text(key)
            except (TypeError, UnicodeError):
                return default
            value = rows.get(text, _MISS)
            if value is not _MISS:
                return default if value is None else value
        self.misses += 1
        value = self.table.get(text)
        if len(rows) >= self.max_rows:
            rows.clear()
        rows[key] = value
        return default if value is None else value

    # -- the rest of the Table protocol, unchanged ---------------------------------------------
    @property
    def name(self) -> str:
        return self.table.name

    @property
    def kind(self) -> str:
        return self.table.kind

    @property
    def key_field(self) -> str | None:
        return self.table.key_field

    def describe(self) -> str:
        return self.table.describe() + " via the agent's row cache"

    def get_many(self, keys: Iterable[Key]) -> dict[Key, Value]:
        get = self.get
        return {k: v for k in keys if (v := get(k)) is not None}

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

    def subscribe(self, listener: ChangeListener, *, last: int | None = None) -> UnsubscribeFn:
        return self.table.subscribe(listener, last=last)

    def index(self, field: str) -> SecondaryIndex:
        return self.table.index(field)

    def stats(self) -> StatsLike:
        return self.table.stats()

    @property
    def is_ready(self) -> bool:
        return self.table.is_ready

    async def wait_until_ready(self, timeout: float | None = None) -> bool:
        return await self.table.wait_until_ready(timeout)
