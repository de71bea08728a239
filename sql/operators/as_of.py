"""Temporal lookups: a versioned table's row for a key as of each stream record's event time."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sql.errors import SqlRuntimeError
from sql.runtime import Env, Fn
from sql.temporal import to_millis
from tables import Key, SnapshotLogTable, Value, VersionedTable
from tables.versions import HistoryExpiredError

E_AS_OF_VALUE = (
    "FOR SYSTEM_TIME AS OF: {value!r} is not an event time (epoch milliseconds, a TIMESTAMP, "
    "a DATE or ISO-8601 text)"
)
E_AS_OF_EXPIRED = "table {table!r} keeps no history as far back as {timestamp} (key {key!r})"

_NONE: tuple[tuple[Key, Value], ...] = ()


class AsOfExpiredError(SqlRuntimeError):
    """An as-of lookup older than the table's history, on a table WITH (as_of_expired='error').

    ``fields``: ``table``, ``key``, ``timestamp`` (and the record's context once raised).
    """


class AsOfTimeError(SqlRuntimeError):
    """The AS OF expression gave a value that is not a point in time, for this record."""


def event_millis(v: Any) -> int:
    """Epoch milliseconds of an AS OF value (the windows' conversion; naive timestamps are UTC)."""
    ms = to_millis(v)
    if ms is None:
        raise AsOfTimeError(E_AS_OF_VALUE.format(value=v), value=v)
    return ms


def as_of_lookup(
    table: VersionedTable | SnapshotLogTable, key: Fn, at: Fn, by_version: bool = False
) -> Fn:
    """Row source: ``table.get_as_of(key(env), at(env))`` (NULL key or time: no row); with
    ``by_version``, ``table.get_at_version(key(env), at(env))`` (``AT SNAPSHOT n``)."""
    get_as_of = table.get_at_version if by_version else table.get_as_of
    name = table.name
    # An Iceberg table's error names the snapshot log's start or the unknown snapshot itself.
    own_words = isinstance(table, SnapshotLogTable)

    def rows(env: Env) -> Iterable[tuple[Key, Value]]:
        k = key(env)
        if k is None:
            return _NONE
        when = at(env)
        if when is None:
            return _NONE
        ms = when if type(when) is int or by_version else event_millis(when)
        try:
            v = get_as_of(k, ms)
        except TypeError:  # unhashable probe value (a JSON object): no key equals it
            return _NONE
        except HistoryExpiredError as exc:
            raise AsOfExpiredError(
                str(exc) if own_words else E_AS_OF_EXPIRED.format(table=name, timestamp=ms, key=k),
                table=name,
                key=k,
                timestamp=ms,
            ) from exc
        return _NONE if v is None else ((k, v),)

    return rows
