"""Stream-table joins: for each stream row, the matching table rows (lookup, probe or scan)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sql.operators.sources import KeyLookup
from sql.runtime import Env, Fn

Next = Callable[[Env, list[dict[str, Any]]], None]
Stage = Callable[[Env, list[dict[str, Any]]], None]
_EMPTY: dict[str, Any] = {}


def join_stage(vs: int, ms: int, source: Fn, residual: Fn | None, left: bool, nxt: Next) -> Stage:
    """INNER: one downstream call per matching row; LEFT: a NULL-extended row when none match."""

    def run(env: Env, out: list[dict[str, Any]]) -> None:
        matched = False
        for k, v in source(env):
            env[vs] = v if isinstance(v, dict) else _EMPTY
            env[ms] = k
            if residual is None or residual(env) is True:
                matched = True
                nxt(env, out)
        if left and not matched:
            env[vs] = _EMPTY
            env[ms] = None
            nxt(env, out)

    return run


def lookup_join_stage(
    vs: int, ms: int, lookup: KeyLookup, residual: Fn | None, left: bool, nxt: Next
) -> Stage:
    """:func:`join_stage` for a key lookup (at most one row), without the row iterator."""
    key, get = lookup.key, lookup.get

    def run(env: Env, out: list[dict[str, Any]]) -> None:
        k = key(env)
        if k is not None:
            try:
                v = get(k)
            except TypeError:  # unhashable probe value (a JSON object): no key equals it
                v = None
            if v is not None:
                env[vs] = v if isinstance(v, dict) else _EMPTY
                env[ms] = k  # its text form only when read (expr's table _key)
                if residual is None or residual(env) is True:
                    nxt(env, out)
                    return
        if left:
            env[vs] = _EMPTY
            env[ms] = None
            nxt(env, out)

    return run
