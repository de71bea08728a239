"""Where a subquery's or join's candidate rows come from: key lookup, index probe or scan."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sql.compile.context import Env, Fn
from tables.protocol import Key, Table, Value

_NONE: tuple[tuple[Key, Value], ...] = ()


def key_lookup(table: Table, key: Fn) -> Fn:
    get = table.get

    def rows(env: Env) -> Iterable[tuple[Key, Value]]:
        k = key(env)
        if k is None:
            return _NONE  # key = NULL matches nothing
        try:
            v = get(k)
        except TypeError:  # unhashable probe value (a JSON object): no key equals it
            return _NONE
        return _NONE if v is None else ((k, v),)

    return rows


def index_probe(table: Table, field: str, value: Fn) -> Fn:
    index = table.index(field)
    get = table.get

    def rows(env: Env) -> Iterable[tuple[Key, Value]]:
        v = value(env)
        if v is None:
            return _NONE
        keys = index.lookup(v)
        if not keys:
            return _NONE
        return [(k, row) for k in keys if (row := get(k)) is not None]

    return rows


def scan(table: Table) -> Fn:
    def rows(env: Env) -> Iterable[tuple[Key, Value]]:
        return table.items()

    return rows


def describe_key(value: Any) -> str:
    return str(value)
