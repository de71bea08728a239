"""NULL-aware operators on Python values: one small named function per SQL operator.

The compiler picks one of these per operator node once; a record only pays for the call. Values of
the same Python type take the fast path; mixed numeric types compare by value (a DOUBLE operand
turns a DECIMAL into DOUBLE, as PostgreSQL and DuckDB do); incompatible values raise a per-record
:class:`RuntimeTypeError` (only possible for columns whose type was not declared).
"""

from __future__ import annotations

import datetime as dt
import operator
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from sql.errors import (
    E_DIVISION_BY_ZERO,
    E_RUNTIME_TYPE,
    DivisionByZeroError,
    RuntimeTypeError,
)
from sql.types import DECIMAL_CONTEXT, divide_decimal, multiply_decimal

BinaryFn = Callable[[Any, Any], Any]
_NUMBER = (int, float, Decimal)


def _category(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, _NUMBER):
        return "number"
    return type(v).__name__


def _align(a: Any, b: Any, op: str) -> tuple[Any, Any]:
    """Bring two non-NULL values of different Python types to comparable ones, or raise."""
    ta, tb = type(a), type(b)
    if ta is float and tb is Decimal:
        return a, float(b)
    if ta is Decimal and tb is float:
        return float(a), b
    if _category(a) != _category(b):
        if ta is dt.date and tb is dt.datetime:
            return _midnight(a), b  # DATE meets TIMESTAMP as its midnight (PostgreSQL, DuckDB)
        if ta is dt.datetime and tb is dt.date:
            return a, _midnight(b)
        raise RuntimeTypeError(E_RUNTIME_TYPE.format(op=op, left=a, right=b))
    return a, b


def _comparison(py: BinaryFn, name: str) -> BinaryFn:
    def compare(a: Any, b: Any) -> Any:
        if a is None or b is None:
            return None
        if type(a) is not type(b):
            a, b = _align(a, b, name)
        try:
            return py(a, b)
        except TypeError as exc:
            raise RuntimeTypeError(E_RUNTIME_TYPE.format(op=name, left=a, right=b)) from exc

    compare.__name__ = f"sql_{py.__name__}"
    return compare


eq = _comparison(operator.eq, "=")
ne = _comparison(operator.ne, "<>")
lt = _comparison(operator.lt, "<")
le = _comparison(operator.le, "<=")
gt = _comparison(operator.gt, ">")
ge = _comparison(operator.ge, ">=")


def is_distinct(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return (a is None) != (b is None)
    return eq(a, b) is False


def not_(a: Any) -> Any:
    return None if a is None else not a


def and_(a: Any, b: Any) -> Any:
    if a is False or b is False:
        return False
    if a is None or b is None:
        return None
    return True


def or_(a: Any, b: Any) -> Any:
    if a is True or b is True:
        return True
    if a is None or b is None:
        return None
    return False


#: A compiled predicate over one record's env (as ``sql.runtime.Fn``; not imported from there to
#: keep this module free of the runtime).
PredicateFn = Callable[[list[Any]], Any]


def _n_ary(fns: list[PredicateFn], wins: bool) -> PredicateFn:
    """``fns`` in three-valued logic: the first ``wins`` value decides at once, else NULL if any
    was NULL, else ``not wins`` (AND: FALSE wins; OR: TRUE wins)."""
    loses = not wins

    def n_ary(e: list[Any]) -> Any:
        unknown = False
        for f in fns:
            v = f(e)
            if v is wins:
                return wins
            if v is None:
                unknown = True
        return None if unknown else loses

    return n_ary


def all_of(fns: list[PredicateFn]) -> PredicateFn:
    """AND of n predicates: FALSE wins at once, else NULL if any is NULL."""
    return _n_ary(fns, False)


def any_of(fns: list[PredicateFn]) -> PredicateFn:
    """OR of n predicates: TRUE wins at once, else NULL if any is NULL."""
    return _n_ary(fns, True)


# -- arithmetic -----------------------------------------------------------------------------------
def _numeric(a: Any, b: Any, op: str) -> tuple[Any, Any]:
    if isinstance(a, bool) or isinstance(b, bool):
        raise RuntimeTypeError(E_RUNTIME_TYPE.format(op=op, left=a, right=b))
    ta, tb = type(a), type(b)
    if ta is float and tb is Decimal:
        return a, float(b)
    if ta is Decimal and tb is float:
        return float(a), b
    return a, b


def _midnight(d: dt.date) -> dt.datetime:
    return dt.datetime(d.year, d.month, d.day)


def add(a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    a, b = _numeric(a, b, "+")
    try:
        if type(a) is Decimal or type(b) is Decimal:
            return DECIMAL_CONTEXT.add(a, b)
        if type(a) is dt.date and type(b) is dt.timedelta:
            return _midnight(a) + b  # DATE + INTERVAL is a TIMESTAMP (PostgreSQL, DuckDB)
        if type(b) is dt.date and type(a) is dt.timedelta:
            return a + _midnight(b)
        return a + b
    except TypeError as exc:
        raise RuntimeTypeError(E_RUNTIME_TYPE.format(op="+", left=a, right=b)) from exc


def sub(a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    a, b = _numeric(a, b, "-")
    try:
        if type(a) is Decimal or type(b) is Decimal:
            return DECIMAL_CONTEXT.subtract(a, b)
        if type(a) is dt.date:
            if type(b) is dt.date:
                return (a - b).days  # DATE - DATE is a number of days (PostgreSQL, DuckDB)
            if type(b) is dt.timedelta:
                return _midnight(a) - b
        return a - b
    except TypeError as exc:
        raise RuntimeTypeError(E_RUNTIME_TYPE.format(op="-", left=a, right=b)) from exc


def mul(a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    a, b = _numeric(a, b, "*")
    if not isinstance(a, _NUMBER) or not isinstance(b, _NUMBER):
        raise RuntimeTypeError(E_RUNTIME_TYPE.format(op="*", left=a, right=b))
    if type(a) is Decimal or type(b) is Decimal:
        return multiply_decimal(a, b)  # type: ignore[arg-type]  # no float here: aligned
    return a * b  # type: ignore[operator]


def div(a: Any, b: Any) -> Any:
    """``/``: INTEGER/INTEGER is DOUBLE (as DuckDB); any DECIMAL operand gives an exact DECIMAL."""
    if a is None or b is None:
        return None
    a, b = _numeric(a, b, "/")
    if not isinstance(a, _NUMBER) or not isinstance(b, _NUMBER):
        raise RuntimeTypeError(E_RUNTIME_TYPE.format(op="/", left=a, right=b))
    if b == 0:
        raise DivisionByZeroError(E_DIVISION_BY_ZERO)
    if type(a) is Decimal or type(b) is Decimal:
        return divide_decimal(Decimal(a), Decimal(b))
    return a / b  # type: ignore[operator]


def intdiv(a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    a, b = _numeric(a, b, "//")
    if b == 0:
        raise DivisionByZeroError(E_DIVISION_BY_ZERO)
    try:
        return a // b
    except TypeError as exc:
        raise RuntimeTypeError(E_RUNTIME_TYPE.format(op="//", left=a, right=b)) from exc


def mod(a: Any, b: Any) -> Any:
    """SQL modulo takes the sign of the dividend (Python's ``%`` takes the divisor's)."""
    if a is None or b is None:
        return None
    a, b = _numeric(a, b, "%")
    if b == 0:
        raise DivisionByZeroError(E_DIVISION_BY_ZERO)
    if type(a) is int and type(b) is int:
        r = abs(a) % abs(b)
        return -r if a < 0 else r
    if type(a) is Decimal or type(b) is Decimal:
        rem = DECIMAL_CONTEXT.remainder(Decimal(a), Decimal(b))
        # Decimal keeps the dividend's sign on a zero remainder (-2 % 1.00 = -0.00); SQL has no
        # negative zero (PostgreSQL and DuckDB answer 0.00), and -0.00 would print as such.
        return rem.copy_abs() if rem.is_zero() else rem
    import math

    return math.fmod(a, b)


def neg(a: Any) -> Any:
    if a is None:
        return None
    if isinstance(a, bool) or not isinstance(a, _NUMBER):
        raise RuntimeTypeError(E_RUNTIME_TYPE.format(op="-", left=0, right=a))
    return -a


def concat(a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    from sql.types import to_string

    return f"{to_string(a)}{to_string(b)}"


def like_matcher(pattern: str, case_insensitive: bool = False) -> Callable[[str], bool]:
    """Compile a LIKE pattern once (``%`` any run, ``_`` one character)."""
    parts = []
    for ch in pattern:
        parts.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
    rx = re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if case_insensitive else 0))
    return lambda s: rx.fullmatch(s) is not None


def in_values(x: Any, values: list[Any] | tuple[Any, ...]) -> Any:
    """``x IN (values)`` in three-valued logic."""
    if not values:
        return False
    if x is None:
        return None
    saw_null = False
    for v in values:
        r = eq(x, v)
        if r:
            return True
        if r is None:
            saw_null = True
    return None if saw_null else False
