"""The Table protocol's reads of an Iceberg table's served snapshot (:mod:`sources.iceberg`).

An Iceberg table serves one snapshot at a time (``current``: a :class:`Rows`, swapped whole when
``refresh='snapshot'`` installs a new one) and reads older ones for time travel. The reads here
see only the served snapshot, through the one attribute the table swaps (``_get`` is
``current.get``, bound once per swap): a lookup is a dict read and no more.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from sources.iceberg_snapshots import Rows
from tables.keys import key_text
from tables.protocol import Key, Value


class ServedSnapshotReads:
    """Point and whole-table reads of ``current`` (the table sets the three attributes)."""

    current: Rows
    _get: Callable[[str], Value | None]
    lookups: int

    def get(self, key: Key, default: Value | None = None) -> Value | None:
        self.lookups += 1
        try:
            v = self._get(key if type(key) is str else key_text(key))
        except TypeError:  # NULL or an object: no key equals it
            return default
        return default if v is None else v

    def get_many(self, keys: Iterable[Key]) -> dict[Key, Value]:
        get = self.get
        return {k: v for k in keys if (v := get(k)) is not None}

    def contains_key(self, key: Key) -> bool:
        return self.get(key) is not None

    def keys(self) -> list[Key]:
        return [k for k, _ in self.current.items()]

    def items(self) -> Iterator[tuple[Key, Value]]:
        return self.current.items()

    def page(self, limit: int, after: str | None = None) -> list[tuple[Key, Value]]:
        rows = sorted(self.current.items())
        if after is not None:
            rows = [r for r in rows if r[0] > after]
        return rows[:limit]

    def __len__(self) -> int:
        return len(self.current)

    def is_empty(self) -> bool:
        return len(self.current) == 0

    def snapshot(self) -> dict[Key, Value]:
        return dict(self.current.items())

    def map_values(self, fn: Callable[[Value], Any]) -> dict[Key, Any]:
        return {k: fn(v) for k, v in self.current.items()}

    def filter(self, predicate: Callable[[Key, Value], bool]) -> dict[Key, Value]:
        return {k: v for k, v in self.current.items() if predicate(k, v)}
