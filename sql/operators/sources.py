"""Where a subquery's or join's candidate rows come from: key lookup, index probe or scan."""

from __future__ import annotations

import math
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from sql.errors import E_NOT_SCANNABLE, UnsupportedError
from sql.runtime import Env, Fn, row_key
from tables import IndexedTable, Key, PrefetchTable, ScanTable, Table, Value

_NONE: tuple[tuple[Key, Value], ...] = ()


class KeyLookup:
    """``key = value``: at most one row, by one ``get``. Callable as a row source; the fused
    operators (lookup joins, subqueries by key) read :attr:`key` and :attr:`get` instead."""

    __slots__ = ("get", "key")

    def __init__(self, table: Table, key: Fn) -> None:
        self.key = key
        self.get = table.get

    def __call__(self, env: Env) -> Iterable[tuple[Key, Value]]:
        k = self.key(env)
        if k is None:
            return _NONE  # key = NULL matches nothing
        try:
            v = self.get(k)
        except TypeError:  # unhashable probe value (a JSON object): no key equals it
            return _NONE
        # The row's own key (its text form, as a scan or index probe yields it), not the probe
        # value: ``_key`` must not depend on the plan.
        return _NONE if v is None else ((row_key(k), v),)


def key_lookup(table: Table, key: Fn) -> Fn:
    return KeyLookup(table, key)


def index_probe(table: IndexedTable, field: str, value: Fn) -> Fn:
    """Candidate rows whose stored ``field`` may equal the probe value.

    The index buckets raw stored values by Python equality, where ``0.1`` (a JSON number decoded
    as float) and ``Decimal("0.1")`` differ; SQL compares them by value. So a DECIMAL probe also
    looks up its float twin and a float probe its exact decimal; the caller keeps the equality in
    its residual filter, which decides (``True`` shares a bucket with ``1`` but is not equal)."""
    lookup = table.index(field).lookup
    get = table.get

    def rows(env: Env) -> Iterable[tuple[Key, Value]]:
        v = value(env)
        if v is None:
            return _NONE
        keys = lookup(v)
        tv = type(v)
        if tv is Decimal and v.is_finite():
            keys = keys | lookup(float(v))
        elif tv is float and math.isfinite(v):
            keys = keys | lookup(Decimal(repr(v)))
        if not keys:
            return _NONE
        if len(keys) == 1:
            (k,) = keys
            row = get(k)
            return _NONE if row is None else ((k, row),)
        # Lazy: EXISTS and scalar subqueries stop after the first (second) matching row.
        return ((k, row) for k in keys if (row := get(k)) is not None)

    return rows


def scan(table: Table) -> Fn:
    """Every row, per record. Raises UnsupportedError for a table that cannot be listed (the
    planner checks first where it can say where in the query)."""
    if not isinstance(table, ScanTable):
        raise UnsupportedError(E_NOT_SCANNABLE.format(table=table.name, source=table.describe()))

    def rows(env: Env) -> Iterable[tuple[Key, Value]]:
        return table.items()

    return rows


class RemoteProbe:
    """``column = value`` on a non-key column of an external table: the rows the database
    returns for that value (fetched ahead for the batch, one query per distinct value, cached).
    Like an index probe, it only narrows: the caller keeps the equality in its residual."""

    __slots__ = ("column", "probe", "value")

    def __init__(self, table: PrefetchTable, column: str, value: Fn) -> None:
        self.column = column
        self.value = value
        self.probe = table.probe

    def __call__(self, env: Env) -> Iterable[tuple[Key, Value]]:
        v = self.value(env)
        if v is None:
            return _NONE
        try:
            hash(v)
        except TypeError:
            return _NONE
        return self.probe(self.column, v)


def describe_key(value: Any) -> str:
    return str(value)
