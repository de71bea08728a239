"""Runs one subquery level over candidate rows: filter → group/aggregate → HAVING → project.

The candidate rows come from the strategy the planner chose (a key lookup yields at most one row,
an index probe the rows of one value, a scan everything), so this code is the same for all.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from sql.operators.sources import KeyLookup
from sql.runtime import Env, Fn
from sql.runtime.parts import SelectParts
from tables import Key, Value

Source = Callable[[Env], Iterable[tuple[Key, Value]]]
_EMPTY: dict[str, Any] = {}


class InnerQuery:
    __slots__ = ("first_only", "ms", "outputs", "parts", "plain", "source", "vs", "where")

    def __init__(
        self, source: Source, vs: int, ms: int, where: Fn | None, parts: SelectParts
    ) -> None:
        self.source = source
        self.vs, self.ms = vs, ms
        self.where = where
        self.parts = parts
        self.outputs = [c.fn for c in parts.outputs]
        self.plain = (
            len(self.outputs) == 1
            and parts.agg is None
            and not parts.order
            and not parts.distinct
            and parts.limit is None
        )

    def rows(self, env: Env, stop_after: int | None = None) -> list[tuple[Any, ...]]:
        """Result rows; ``stop_after`` lets EXISTS/scalar stop early (when nothing needs all)."""
        parts, vs, ms, where = self.parts, self.vs, self.ms, self.where
        if parts.agg is not None:
            return self._aggregate(env)
        if self.plain:
            # The per-record hot path (key lookups, index probes): one output, no ORDER/DISTINCT/
            # LIMIT, so no generator per row and no finishing pass.
            out0 = self.outputs[0]
            plain: list[tuple[Any, ...]] = []
            for k, v in self.source(env):
                env[vs] = v if isinstance(v, dict) else _EMPTY
                env[ms] = k
                if where is not None and where(env) is not True:
                    continue
                plain.append((out0(env),))
                if stop_after is not None and len(plain) >= stop_after:
                    break
            return plain
        simple = not parts.order and not parts.distinct
        limit = parts.limit
        if simple and limit is not None:
            stop_after = limit if stop_after is None else min(stop_after, limit)
        outs = self.outputs
        with_keys = bool(parts.order)
        out: list[tuple[Any, ...]] = []
        keyed: list[tuple[tuple[Any, ...], tuple[Any, ...]]] = []
        for k, v in self.source(env):
            env[vs] = v if isinstance(v, dict) else _EMPTY
            env[ms] = k
            if where is not None and where(env) is not True:
                continue
            row = tuple(f(env) for f in outs)
            if with_keys:
                keyed.append((tuple(f(env) for f, _ in parts.order), row))
            else:
                out.append(row)
                if simple and stop_after is not None and len(out) >= stop_after:
                    return out
        if with_keys:
            out = _sorted(keyed, [d for _, d in parts.order])
        return _finish(out, parts)

    def _aggregate(self, env: Env) -> list[tuple[Any, ...]]:
        parts, vs, ms, where = self.parts, self.vs, self.ms, self.where
        agg = parts.agg
        assert agg is not None
        specs, keys = agg.specs, agg.keys
        groups: dict[tuple[Any, ...], list[Any]] = {}
        for k, v in self.source(env):
            env[vs] = v if isinstance(v, dict) else _EMPTY
            env[ms] = k
            if where is not None and where(env) is not True:
                continue
            gk = tuple(f(env) for f in keys)
            accs = groups.get(gk)
            if accs is None:
                accs = groups[gk] = [s.factory() for s in specs]
            for acc, spec in zip(accs, specs, strict=True):
                acc.add(1 if spec.arg is None else spec.arg(env))
        if not keys and not groups:
            groups[()] = [s.factory() for s in specs]  # aggregates over no rows: one row
        out: list[tuple[Any, ...]] = []
        keyed: list[tuple[tuple[Any, ...], tuple[Any, ...]]] = []
        for gk, accs in groups.items():
            env[agg.key_slot] = gk
            env[agg.agg_slot] = tuple(a.result() for a in accs)
            if agg.having is not None and agg.having(env) is not True:
                continue
            row = tuple(f(env) for f in self.outputs)
            if parts.order:
                keyed.append((tuple(f(env) for f, _ in parts.order), row))
            else:
                out.append(row)
        if parts.order:
            out = _sorted(keyed, [d for _, d in parts.order])
        return _finish(out, parts)


def _finish(rows: list[tuple[Any, ...]], parts: SelectParts) -> list[tuple[Any, ...]]:
    if parts.distinct:
        rows = distinct(rows)
    if parts.limit is not None:
        rows = rows[: parts.limit]
    return rows


def distinct(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    seen: set[Any] = set()
    out = []
    for r in rows:
        try:
            key: Any = r
            if key in seen:
                continue
            seen.add(key)
        except TypeError:  # unhashable JSON values: compare by encoding
            from core.codec import dumps

            key = dumps(list(r))
            if key in seen:
                continue
            seen.add(key)
        out.append(r)
    return out


def _sorted(
    keyed: list[tuple[tuple[Any, ...], tuple[Any, ...]]], desc: list[bool]
) -> list[tuple[Any, ...]]:
    from sql.logic import lt

    def cmp(a: tuple[tuple[Any, ...], Any], b: tuple[tuple[Any, ...], Any]) -> int:
        for x, y, d in zip(a[0], b[0], desc, strict=True):
            if x is None or y is None:
                if x is None and y is None:
                    continue
                return 1 if x is None else -1  # NULLS LAST, both directions (DuckDB)
            if lt(x, y):
                return 1 if d else -1
            if lt(y, x):
                return -1 if d else 1
        return 0

    return [row for _, row in sorted(keyed, key=functools.cmp_to_key(cmp))]


def by_key(
    kind: str, lookup: KeyLookup, vs: int, ms: int, where: Fn | None, parts: SelectParts
) -> Fn | None:
    """EXISTS or a scalar subquery whose plan is one key lookup, fused into one closure: no row
    iterator, no result list (the per-record hot path of ``EXISTS (... WHERE t.key = o.x)``).
    None for shapes it does not cover (aggregates, ORDER BY, DISTINCT, LIMIT)."""
    if parts.agg is not None or parts.order or parts.distinct or parts.limit is not None:
        return None
    key, get = lookup.key, lookup.get
    outs = [c.fn for c in parts.outputs]
    consts = all(c.const for c in parts.outputs)

    def found(env: Env) -> bool:
        k = key(env)
        if k is None:
            return False
        try:
            v = get(k)
        except TypeError:  # unhashable probe value (a JSON object): no key equals it
            return False
        if v is None:
            return False
        env[vs] = v if isinstance(v, dict) else _EMPTY
        env[ms] = k  # its text form only when read (expr's table _key)
        return where is None or where(env) is True

    if kind == "exists":
        if consts:
            return found

        def exists(env: Env) -> bool:
            if not found(env):
                return False
            for f in outs:  # as the generic path: an output that fails is the record's error
                f(env)
            return True

        return exists
    if kind == "scalar" and len(outs) == 1:
        out0 = outs[0]

        def scalar(env: Env) -> Any:  # found() inlined: one call less per record
            k = key(env)
            if k is None:
                return None
            try:
                v = get(k)
            except TypeError:
                return None
            if v is None:
                return None
            env[vs] = v if isinstance(v, dict) else _EMPTY
            env[ms] = k  # its text form only when read (expr's table _key)
            if where is not None and where(env) is not True:
                return None
            return out0(env)

        return scalar
    return None
