"""Secondary indexes: value of one field -> keys of the rows holding it, maintained from changes."""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from tables.protocol import Change, Key, Value

_EMPTY: frozenset[Key] = frozenset()


#: A number written as text: ``"0.10"``, ``" -3 "``, ``"1e3"`` (no NaN, infinity or underscores).
_NUMBER_TEXT = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*")


def _field_of(value: Value | None, field: str) -> Any:
    if isinstance(value, dict):
        return value.get(field)
    return None


def number_twin(v: str) -> Decimal | None:
    """The number a text holds, or None. A numeric column may hold numbers as JSON strings
    (``{"px": "0.10"}``), which SQL's ``=`` reads as the number; the index files such a row
    under both its text and its number, so a numeric probe finds it (and a text probe of a
    number finds rows holding the number). Callers re-check equality on each row."""
    if not v or v[-1] not in "0123456789. \t\n" or _NUMBER_TEXT.fullmatch(v) is None:
        return None
    try:
        return Decimal(v.strip())
    except (InvalidOperation, ValueError):
        return None


class HashIndex:
    """Equality index on one top-level field of the row.

    Values that cannot be hashed (nested objects, arrays) are not indexed: an equality probe on them
    is answered by a scan in the SQL layer. Numeric values follow Python equality, so ``1``, ``1.0``
    and ``Decimal("1")`` share a bucket, as SQL numeric comparison wants; a number written as
    text (``"1.00"``) is also filed under its number (:func:`number_twin`), and a lookup of such
    a text also looks up its number. A lookup returns candidates: a superset of the equal rows.
    """

    __slots__ = ("_buckets", "field")

    def __init__(self, field: str) -> None:
        self.field = field
        self._buckets: dict[Hashable, set[Key]] = {}

    def lookup(self, value: Any) -> frozenset[Key]:
        try:
            bucket = self._buckets.get(value)
        except TypeError:
            return _EMPTY
        if type(value) is str and (twin := number_twin(value)) is not None:
            other = self._buckets.get(twin)
            if other:
                return frozenset(other) | (bucket or _EMPTY)
        return frozenset(bucket) if bucket else _EMPTY

    def distinct_values(self) -> int:
        return len(self._buckets)

    def add(self, key: Key, value: Value | None) -> None:
        v = _field_of(value, self.field)
        if isinstance(v, Hashable):
            self._buckets.setdefault(v, set()).add(key)
            if type(v) is str and (twin := number_twin(v)) is not None:
                self._buckets.setdefault(twin, set()).add(key)

    def remove(self, key: Key, value: Value | None) -> None:
        v = _field_of(value, self.field)
        if not isinstance(v, Hashable):
            return
        self._discard(v, key)
        if type(v) is str and (twin := number_twin(v)) is not None:
            self._discard(twin, key)

    def _discard(self, v: Hashable, key: Key) -> None:
        bucket = self._buckets.get(v)
        if bucket is not None:
            bucket.discard(key)
            if not bucket:
                del self._buckets[v]

    def on_change(self, change: Change) -> None:
        if change.old_value is not None:
            self.remove(change.key, change.old_value)
        if change.value is not None:
            self.add(change.key, change.value)


class IndexRegistry:
    """The indexes of one table, each built on first request from the table's rows."""

    __slots__ = ("_indexes", "_rows", "_subscribe")

    def __init__(
        self,
        rows: Callable[[], Iterable[tuple[Key, Value]]],
        subscribe: Callable[[Callable[[Change], None]], Callable[[], None]],
    ) -> None:
        self._rows = rows
        self._subscribe = subscribe
        self._indexes: dict[str, HashIndex] = {}

    def get(self, field: str) -> HashIndex:
        index = self._indexes.get(field)
        if index is None:
            index = HashIndex(field)
            for key, value in self._rows():
                index.add(key, value)
            self._subscribe(index.on_change)
            self._indexes[field] = index
        return index

    def fields(self) -> list[str]:
        return sorted(self._indexes)
