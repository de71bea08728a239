"""Temporal lookups: a versioned table's row for a key as of each stream record's event time."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from sql.compile.context import Env, Fn
from sql.errors import SqlRuntimeError
from tables.protocol import Key, Value, VersionedTable
from tables.versions import HistoryExpiredError

E_AS_OF_VALUE = (
    "FOR SYSTEM_TIME AS OF: {value!r} is not an event time (epoch milliseconds, a TIMESTAMP, "
    "a DATE or ISO-8601 text)"
)
E_AS_OF_EXPIRED = "table {table!r} keeps no history as far back as {timestamp} (key {key!r})"

_NONE: tuple[tuple[Key, Value], ...] = ()
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MS = dt.timedelta(milliseconds=1)


class AsOfExpiredError(SqlRuntimeError):
    """An as-of lookup older than the table's history, on a table WITH (as_of_expired='error').

    ``fields``: ``table``, ``key``, ``timestamp`` (and the record's context once raised).
    """


class AsOfTimeError(SqlRuntimeError):
    """The AS OF expression gave a value that is not a point in time, for this record."""


def event_millis(v: Any) -> int:
    """Epoch milliseconds of an AS OF value (naive timestamps are UTC)."""
    t = type(v)
    if t is int:
        return int(v)
    if (t is float and math.isfinite(v)) or (t is Decimal and v.is_finite()):
        return int(v)
    if t is str:
        s = v.strip()
        if s.lstrip("-").isdigit():
            return int(s)
        try:
            v, t = dt.datetime.fromisoformat(s), dt.datetime
        except ValueError:
            raise AsOfTimeError(E_AS_OF_VALUE.format(value=v), value=v) from None
    if t is dt.datetime:
        aware = v if v.tzinfo is not None else v.replace(tzinfo=dt.UTC)
        return (aware - _EPOCH) // _MS  # type: ignore[no-any-return]
    if t is dt.date:
        return (dt.datetime(v.year, v.month, v.day, tzinfo=dt.UTC) - _EPOCH) // _MS
    raise AsOfTimeError(E_AS_OF_VALUE.format(value=v), value=v)


def as_of_lookup(table: VersionedTable, key: Fn, at: Fn) -> Fn:
    """Row source: ``table.get_as_of(key(env), at(env))`` (NULL key or time: no row)."""
    get_as_of = table.get_as_of
    name = table.name

    def rows(env: Env) -> Iterable[tuple[Key, Value]]:
        k = key(env)
        if k is None:
            return _NONE
        when = at(env)
        if when is None:
            return _NONE
        ms = event_millis(when)
        try:
            v = get_as_of(k, ms)
        except TypeError:  # unhashable probe value (a JSON object): no key equals it
            return _NONE
        except HistoryExpiredError as exc:
            raise AsOfExpiredError(
                E_AS_OF_EXPIRED.format(table=name, timestamp=ms, key=k),
                table=name,
                key=k,
                timestamp=ms,
            ) from exc
        return _NONE if v is None else ((k, v),)

    return rows
