"""Secondary indexes: value of one field -> keys of the rows holding it, maintained from changes."""

from __future__ import annotations

import datetime as dt
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


def _days_of_text(v: str) -> tuple[dt.date, ...]:
    """The day(s) an ISO date or timestamp text stands for: as written, and in UTC when it
    carries a zone (a DATE column reads the first, a TIMESTAMP column the second)."""
    if len(v) < 10 or v[4] != "-" or v[7] != "-" or not v[:4].isdigit():
        return ()
    try:
        day = dt.date.fromisoformat(v[:10])
    except ValueError:
        return ()
    try:
        t = dt.datetime.fromisoformat(v.strip())
    except ValueError:
        return (day,)
    if t.tzinfo is None:
        return (day,)
    utc = t.astimezone(dt.UTC).date()
    return (day,) if utc == day else (day, utc)


def twins(v: Any) -> tuple[Hashable, ...]:
    """The other bucket keys of a value: what SQL's ``=`` may equate with it that Python's does
    not. A number written as text (:func:`number_twin`); a date or timestamp text, and a
    timestamp, by its day (a DATE equals a TIMESTAMP at its midnight). Probing and filing both
    add them, so a lookup returns a superset of the equal rows; callers re-check equality."""
    t = type(v)
    if t is str:
        n = number_twin(v)
        return (n,) if n is not None else _days_of_text(v)
    if t is dt.datetime:
        return (v.date(),)
    return ()


class HashIndex:
    """Equality index on one top-level field of the row.

    Values that cannot be hashed (nested objects, arrays) are not indexed: an equality probe on them
    is answered by a scan in the SQL layer. Numeric values follow Python equality, so ``1``, ``1.0``
    and ``Decimal("1")`` share a bucket, as SQL numeric comparison wants; a number written as
    text (``"1.00"``) is also filed under its number, a date or timestamp (or its text) under its
    day (:func:`twins`), and a lookup also looks up the probe's twins. A lookup returns
    candidates: a superset of the equal rows.
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
        found = frozenset(bucket) if bucket else _EMPTY
        tv = type(value)
        if tv is str or tv is dt.datetime:
            for twin in twins(value):
                other = self._buckets.get(twin)
                if other:
                    found = found | other
        return found

    def distinct_values(self) -> int:
        return len(self._buckets)

    def add(self, key: Key, value: Value | None) -> None:
        v = _field_of(value, self.field)
        if isinstance(v, Hashable):
            self._buckets.setdefault(v, set()).add(key)
            tv = type(v)
            if tv is str or tv is dt.datetime:
                for twin in twins(v):
                    self._buckets.setdefault(twin, set()).add(key)

    def remove(self, key: Key, value: Value | None) -> None:
        v = _field_of(value, self.field)
        if not isinstance(v, Hashable):
            return
        self._discard(v, key)
        tv = type(v)
        if tv is str or tv is dt.datetime:
            for twin in twins(v):
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
