"""Results of uncorrelated subqueries kept current from the table's change feed.

Each structure subscribes at compile time, is built once from the table, then updated on every
insert, update and delete: a change between two records changes the second record's answer, and
no record ever scans. A row whose predicate fails to evaluate (a run-time error) is remembered, and
the query raises that error for as long as the row is there, as a from-scratch run would.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from sql import logic
from sql.errors import SqlRuntimeError
from sql.operators.inner import InnerQuery
from sql.runtime import Env, Fn
from sql.runtime.accumulators import Accumulator
from tables import Change, ChangeFeedTable, Key, LocalTable, Value

_EMPTY: dict[str, Any] = {}


class Maintained:
    """Base: evaluates the subquery's WHERE and value on single rows, applies +1/-1 per change."""

    def __init__(
        self, table: LocalTable, vs: int, ms: int, env_size: int, where: Fn | None
    ) -> None:
        self.table = table
        self.vs, self.ms = vs, ms
        self.env: Env = [None] * env_size
        self.where = where
        self.errors: dict[Key, SqlRuntimeError] = {}
        for key, value in table.items():
            self._apply(key, value, 1)
        self.unsubscribe = table.subscribe(self.on_change)

    def on_change(self, change: Change) -> None:
        if change.old_value is not None:
            self._apply(change.key, change.old_value, -1)
        if change.value is not None:
            self._apply(change.key, change.value, 1)

    def _apply(self, key: Key, value: Value, sign: int) -> None:
        env = self.env
        env[self.vs] = value if isinstance(value, dict) else _EMPTY
        env[self.ms] = key
        try:
            if self.where is not None and self.where(env) is not True:
                if sign < 0:
                    self.errors.pop(key, None)
                return
            self.update(env, sign)
        except SqlRuntimeError as err:
            if sign > 0:
                self.errors[key] = err
            else:
                self.errors.pop(key, None)
            return
        if sign < 0:
            self.errors.pop(key, None)

    def check(self) -> None:
        if self.errors:
            raise next(iter(self.errors.values()))

    def update(self, env: Env, sign: int) -> None:
        raise NotImplementedError


def _temporal_twin(x: dt.date) -> dt.date | None:
    """The value SQL equates with ``x`` that Python does not: a DATE's midnight, a midnight
    TIMESTAMP's DATE."""
    if type(x) is dt.date:
        return dt.datetime(x.year, x.month, x.day)
    if isinstance(x, dt.datetime) and x.time() == dt.time() and x.tzinfo is None:
        return x.date()
    return None


class InSet(Maintained):
    """``x [NOT] IN (SELECT v ...)``: multiplicity per value, plus the count of NULL values."""

    def __init__(
        self, table: LocalTable, vs: int, ms: int, env_size: int, where: Fn | None, value: Fn
    ) -> None:
        self.value = value
        self.counts: dict[Any, int] = {}
        self.nulls = 0
        self.total = 0
        self.floats = 0  # float members need SQL (value) equality against DECIMAL probes
        self.decimals = 0  # and DECIMAL members against DOUBLE probes
        self.temporal = 0  # DATE members meet TIMESTAMP probes as their midnight (and back)
        super().__init__(table, vs, ms, env_size, where)

    def update(self, env: Env, sign: int) -> None:
        v = self.value(env)
        self.total += sign
        if v is None:
            self.nulls += sign
            return
        if type(v) is float:
            self.floats += sign
        elif type(v) is Decimal:
            self.decimals += sign
        elif isinstance(v, dt.date):
            self.temporal += sign
        n = self.counts.get(v, 0) + sign
        if n:
            self.counts[v] = n
        else:
            del self.counts[v]

    def contains(self, x: Any) -> Any:
        if self.errors:
            self.check()
        if self.total == 0:
            return False
        if x is None:
            return None
        try:
            if x in self.counts and type(x) is not bool:
                return True
        except TypeError:
            return logic.in_values(x, list(self.counts))
        if self.temporal and isinstance(x, dt.date):
            twin = _temporal_twin(x)
            if twin is not None and twin in self.counts:
                return True
        floats = [v for v in self.counts if type(v) is float] if self.floats else []
        if floats and type(x) is not float and logic.in_values(x, floats):
            return True
        # DOUBLE = DECIMAL compares as DOUBLE. The float's shortest repr is the one decimal of up
        # to 15 significant digits that rounds to it, so one hash probe decides for any
        # DECIMAL(p<=15, s) member (Decimal hashing ignores the scale: 0.1 == 0.10).
        if (
            self.decimals
            and type(x) is float
            and math.isfinite(x)
            and Decimal(repr(x)) in self.counts
        ):
            return True
        return None if self.nulls else False

    def describe(self) -> str:
        return f"{len(self.counts)} distinct values, {self.nulls} NULLs"


class RowCount(Maintained):
    """``EXISTS (SELECT ... WHERE p)`` uncorrelated: the number of rows satisfying p."""

    def __init__(
        self, table: LocalTable, vs: int, ms: int, env_size: int, where: Fn | None
    ) -> None:
        self.count = 0
        super().__init__(table, vs, ms, env_size, where)

    def update(self, env: Env, sign: int) -> None:
        self.count += sign

    def exists(self) -> bool:
        if self.errors:
            self.check()
        return self.count > 0


class Aggregate(Maintained):
    """An uncorrelated single aggregate (COUNT/SUM/AVG O(1); MIN/MAX O(log n) per change)."""

    def __init__(
        self,
        table: LocalTable,
        vs: int,
        ms: int,
        env_size: int,
        where: Fn | None,
        arg: Fn | None,
        acc: Accumulator,
    ) -> None:
        self.arg = arg
        self.acc = acc
        super().__init__(table, vs, ms, env_size, where)

    def update(self, env: Env, sign: int) -> None:
        v = 1 if self.arg is None else self.arg(env)
        if sign > 0:
            self.acc.add(v)
        else:
            self.acc.remove(v)

    def result(self) -> Any:
        if self.errors:
            self.check()
        return self.acc.result()


class CachedRows:
    """Any other uncorrelated subquery: its rows, recomputed on the first use after a change to
    any table it reads (nested subqueries included)."""

    def __init__(self, inner: InnerQuery, tables: list[ChangeFeedTable], env_size: int) -> None:
        self.inner = inner
        self.env: Env = [None] * env_size
        self.dirty = True
        self.rows: list[tuple[Any, ...]] = []
        self.recomputes = 0
        self.unsubscribers: list[Callable[[], None]] = [
            t.subscribe(self._invalidate) for t in tables
        ]

    def _invalidate(self, change: Change) -> None:
        self.dirty = True

    def unsubscribe(self) -> None:
        for u in self.unsubscribers:
            u()

    def get(self) -> list[tuple[Any, ...]]:
        if self.dirty:
            self.rows = self.inner.rows(self.env)
            self.dirty = False
            self.recomputes += 1
        return self.rows
