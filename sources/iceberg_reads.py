"""The Table protocol's reads of an Iceberg table's served snapshot (:mod:`sources.iceberg`).

An Iceberg table serves one snapshot at a time (``current``: a :class:`Rows`, swapped whole when
``refresh='snapshot'`` installs a new one) and reads older ones for time travel. The reads here
see only the served snapshot, through the one attribute the table swaps (``_get`` is
``current.get``, bound once per swap): a lookup is a dict read and no more.

A join on a non-key column probes :meth:`ServedSnapshotReads.index`: a hash index of the
served snapshot on that column (:class:`FrozenIndex`), built when the query asks for it and then
again for every snapshot the table loads — in the loading thread, beside the snapshot's rows —
and swapped in with them. Without it such a join scans the snapshot per
record (EXPLAIN's ``FULL SCAN``).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any

from sources.iceberg_snapshots import Rows
from tables.indexes import twins
from tables.keys import key_text
from tables.protocol import Key, Value

_EMPTY: frozenset[Key] = frozenset()


class FrozenIndex:
    """One snapshot's equality index on a field: value → the keys of the rows holding it, built
    once (a snapshot never changes). Most values name one row: those map to the key itself (no
    set per row: the build is a dict insert per row), the others to a frozenset. Equality as
    :class:`tables.HashIndex` files it: Python's (``1``, ``1.0`` and ``Decimal("1")`` share a
    bucket), a number or date written as text also under its number or day
    (:func:`tables.indexes.twins`); unhashable values are not indexed. A lookup gives
    candidates: the join re-checks equality on each row."""

    __slots__ = ("field", "many", "one")

    def __init__(self, field: str, pairs: Iterable[tuple[Key, Any]]) -> None:
        self.field = field
        one: dict[Hashable, Key] = {}
        many: dict[Hashable, list[Key]] = {}
        setdefault = one.setdefault
        for key, v in pairs:
            try:
                first = setdefault(v, key)
            except TypeError:  # a nested object or array: not indexed
                continue
            if first != key:
                many.setdefault(v, [first]).append(key)
            if type(v) is str or type(v) is dt.datetime:
                for twin in twins(v):
                    first = setdefault(twin, key)
                    if first != key:
                        many.setdefault(twin, [first]).append(key)
        self.one = one
        self.many: dict[Hashable, frozenset[Key]] = {v: frozenset(k) for v, k in many.items()}

    def _bucket(self, value: Any) -> frozenset[Key]:
        found = self.many.get(value)
        if found is not None:
            return found
        key = self.one.get(value)
        return _EMPTY if key is None else frozenset((key,))

    def lookup(self, value: Any) -> frozenset[Key]:
        try:
            found = self._bucket(value)
        except TypeError:
            return _EMPTY
        if type(value) is str or type(value) is dt.datetime:
            for twin in twins(value):
                found = found | self._bucket(twin)
        return found


def build_index(rows: Rows, field: str) -> FrozenIndex:
    """``field``'s index over one snapshot's rows: from the column where the rows keep columns
    (in memory: no row is built), else row by row (a spilled snapshot)."""
    column = getattr(rows, "column", None)
    if column is not None:
        return FrozenIndex(field, column(field))
    pairs = ((k, row.get(field) if isinstance(row, dict) else None) for k, row in rows.items())
    return FrozenIndex(field, pairs)


class SnapshotIndex:
    """The served snapshot's index on one field: the object a compiled query holds; the table
    replaces ``built`` when it swaps snapshots (with no await between the two assignments)."""

    __slots__ = ("built", "field")

    def __init__(self, field: str, built: FrozenIndex) -> None:
        self.field = field
        self.built = built

    def lookup(self, value: Any) -> frozenset[Key]:
        return self.built.lookup(value)


class ServedSnapshotReads:
    """Point and whole-table reads of ``current`` (the table sets the three attributes)."""

    current: Rows
    _get: Callable[[str], Value | None]
    lookups: int
    #: field → the served snapshot's index (asked for by a query's non-key join)
    indexes: dict[str, SnapshotIndex]
    #: snapshot id → indexes built with it in the loading thread, taken by :meth:`reindex`
    prebuilt: dict[int, dict[str, FrozenIndex]]
    index_builds: int
    last_index_ms: float | None

    def index(self, field: str) -> SnapshotIndex:
        """The served snapshot's hash index on ``field`` (built now, the first time)."""
        index = self.indexes.get(field)
        if index is None:
            index = self.indexes[field] = SnapshotIndex(
                field, self.timed_build(self.current, field)
            )
        return index

    def timed_build(self, rows: Rows, field: str) -> FrozenIndex:
        started = time.perf_counter()
        built = build_index(rows, field)
        self.last_index_ms = round((time.perf_counter() - started) * 1000, 3)
        self.index_builds += 1
        return built

    def prebuild(self, rows: Rows, sid: int) -> None:
        """In the thread that loaded snapshot ``sid``: its indexes on the fields asked for."""
        if self.indexes:
            self.prebuilt[sid] = {f: self.timed_build(rows, f) for f in list(self.indexes)}

    def reindex(self, rows: Rows, sid: int) -> None:
        """The indexes of the snapshot being installed: prebuilt, else built now."""
        ready = self.prebuilt.pop(sid, {})
        for field, index in self.indexes.items():
            index.built = ready.get(field) or self.timed_build(rows, field)

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
