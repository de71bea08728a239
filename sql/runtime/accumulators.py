"""Aggregate accumulators (append-only and retractable), run per group, window or maintained
subquery; the registry (``sql.functions.aggregates``) says which function uses which.

SUM and AVG never round: integers sum as ``int``, DECIMALs in the exact context, and DOUBLEs are
accumulated as exact Decimals and rounded once on output, so retracting a value (a table update or
delete under a maintained aggregate) leaves no floating-point residue.
"""

from __future__ import annotations

import heapq
from decimal import Decimal
from typing import Any

from sql.types import DECIMAL_CONTEXT, divide_decimal


class Accumulator:
    __slots__ = ()

    def add(self, v: Any) -> None:
        raise NotImplementedError

    def remove(self, v: Any) -> None:
        raise NotImplementedError

    def result(self) -> Any:
        raise NotImplementedError


class CountStar(Accumulator):
    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0

    def add(self, v: Any) -> None:
        self.n += 1

    def remove(self, v: Any) -> None:
        self.n -= 1

    def result(self) -> Any:
        return self.n


class Count(CountStar):
    __slots__ = ()

    def add(self, v: Any) -> None:
        if v is not None:
            self.n += 1

    def remove(self, v: Any) -> None:
        if v is not None:
            self.n -= 1


class Sum(Accumulator):
    __slots__ = ("decimals", "exact", "floats", "ints", "n")

    def __init__(self) -> None:
        self.n = 0
        self.ints = 0
        self.exact = Decimal(0)
        self.floats = 0  # how many DOUBLE values are in: the result is DOUBLE if any
        self.decimals = 0

    def _apply(self, v: Any, sign: int) -> None:
        t = type(v)
        if t is int:
            self.ints += sign * v
        elif t is Decimal:
            self.exact = DECIMAL_CONTEXT.add(self.exact, v if sign > 0 else -v)
            self.decimals += sign
        elif t is float:
            self.exact = DECIMAL_CONTEXT.add(self.exact, Decimal(v) if sign > 0 else -Decimal(v))
            self.floats += sign
        else:
            from sql.errors import E_RUNTIME_TYPE, RuntimeTypeError

            raise RuntimeTypeError(E_RUNTIME_TYPE.format(op="SUM", left=0, right=v))
        self.n += sign

    def add(self, v: Any) -> None:
        if v is not None:
            self._apply(v, 1)

    def remove(self, v: Any) -> None:
        if v is not None:
            self._apply(v, -1)

    def result(self) -> Any:
        if self.n == 0:
            return None
        if self.floats:
            return float(DECIMAL_CONTEXT.add(self.exact, self.ints))
        if self.decimals:
            return DECIMAL_CONTEXT.add(self.exact, self.ints)
        return self.ints


class Avg(Sum):
    __slots__ = ()

    def result(self) -> Any:
        total = Sum.result(self)
        if total is None:
            return None
        if isinstance(total, Decimal):
            return divide_decimal(total, Decimal(self.n))
        if self.floats:
            return float(DECIMAL_CONTEXT.divide(DECIMAL_CONTEXT.add(self.exact, self.ints), self.n))
        return total / self.n


class Min(Accumulator):
    """Append-only MIN; see :class:`OrderedBag` for the retractable one."""

    __slots__ = ("best", "sign")

    def __init__(self) -> None:
        self.best: Any = None
        self.sign = 1

    def add(self, v: Any) -> None:
        from sql.logic import gt, lt

        if v is not None and (self.best is None or (lt if self.sign > 0 else gt)(v, self.best)):
            self.best = v

    def result(self) -> Any:
        return self.best


class Max(Min):
    __slots__ = ()

    def __init__(self) -> None:
        super().__init__()
        self.sign = -1


class _Rev:
    """Reverses ordering so ``heapq`` (a min-heap) can serve MAX."""

    __slots__ = ("v",)

    def __init__(self, v: Any) -> None:
        self.v = v

    def __lt__(self, other: _Rev) -> bool:
        return bool(other.v < self.v)


class _Counted(Accumulator):
    """The non-NULL values added and not removed, as value → count (a removal of a value not
    there is no error: its count was already dropped)."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[Any, int] = {}

    def remove(self, v: Any) -> None:
        if v is None:
            return
        n = self.counts.get(v, 0) - 1
        if n > 0:
            self.counts[v] = n
        else:
            self.counts.pop(v, None)


class OrderedBag(_Counted):
    """Retractable MIN or MAX: value counts plus a lazily cleaned heap; O(log n) per change."""

    __slots__ = ("heap", "is_max")

    def __init__(self, is_max: bool) -> None:
        super().__init__()
        self.heap: list[Any] = []
        self.is_max = is_max

    def add(self, v: Any) -> None:
        if v is None:
            return
        n = self.counts.get(v, 0)
        self.counts[v] = n + 1
        if n == 0:
            heapq.heappush(self.heap, _Rev(v) if self.is_max else v)

    def add_count(self, v: Any, n: int) -> None:
        """Add ``n`` copies of ``v`` at once: restoring a saved state, merging two bags."""
        had = self.counts.get(v, 0)
        self.counts[v] = had + n
        if not had:
            heapq.heappush(self.heap, _Rev(v) if self.is_max else v)

    def result(self) -> Any:
        heap, counts = self.heap, self.counts
        while heap:
            top = heap[0].v if self.is_max else heap[0]
            if top in counts:
                return top
            heapq.heappop(heap)  # stale: its last copy was removed
        return None


class CountDistinct(_Counted):
    __slots__ = ()

    def add(self, v: Any) -> None:
        if v is not None:
            self.counts[v] = self.counts.get(v, 0) + 1

    def result(self) -> Any:
        return len(self.counts)
