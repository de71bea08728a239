"""SQL types, their Python representation, and conversions that never route DECIMAL through float.

Representation: NULL is ``None``; BOOLEAN ``bool``; INTEGER/BIGINT ``int``; DOUBLE ``float``;
DECIMAL ``decimal.Decimal`` (its exponent is the scale: ``Decimal("22.50")``); STRING ``str``;
DATE ``datetime.date``; TIMESTAMP ``datetime.datetime``; INTERVAL ``datetime.timedelta``;
JSON objects/arrays ``dict``/``list``. ``ANY`` is the static type of a column whose type is only
known from its values (undeclared input); operations on it are checked per value.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any

from sqlglot import exp

from sql.errors import E_CAST, E_NUMERIC_OVERFLOW, CastError, NumericOverflowError
from sql.errors import short as _short
from sql.temporal import (
    EPOCH,
    event_timestamp,
    millis_to_timestamp,
    timestamp_to_millis,
    to_date,
    to_interval,
    to_timestamp,
)

#: Exact arithmetic: wide enough that +, -, * of DECIMAL(38, s) values never round.
DECIMAL_CONTEXT = Context(prec=120, rounding=ROUND_HALF_UP)
_MULTIPLY = DECIMAL_CONTEXT.multiply
#: The range of BIGINT (64-bit, as in every SQL engine); a value outside it is a cast error.
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1
#: Significant digits a DECIMAL quotient keeps at least (see :func:`divide_decimal`).
MIN_SIGNIFICANT_DIGITS = 16


@dataclass(frozen=True, slots=True)
class SqlType:
    name: str
    precision: int | None = None
    scale: int | None = None

    def __str__(self) -> str:
        if self.name == "DECIMAL" and self.precision is not None:
            return f"DECIMAL({self.precision},{self.scale or 0})"
        return self.name

    @property
    def is_numeric(self) -> bool:
        return self.name in NUMERIC_NAMES

    @property
    def is_any(self) -> bool:
        return self.name in ("ANY", "NULL")


BOOLEAN = SqlType("BOOLEAN")
BIGINT = SqlType("BIGINT")
DOUBLE = SqlType("DOUBLE")
DECIMAL = SqlType("DECIMAL")
STRING = SqlType("STRING")
DATE = SqlType("DATE")
TIMESTAMP = SqlType("TIMESTAMP")
INTERVAL = SqlType("INTERVAL")
JSON = SqlType("JSON")
NULL = SqlType("NULL")
ANY = SqlType("ANY")
NUMERIC_NAMES = frozenset({"BIGINT", "DOUBLE", "DECIMAL"})

_DTYPE_NAMES: dict[str, SqlType] = {
    "BOOLEAN": BOOLEAN,
    "TINYINT": BIGINT,
    "SMALLINT": BIGINT,
    "INT": BIGINT,
    "BIGINT": BIGINT,
    "UBIGINT": BIGINT,
    "UINT": BIGINT,
    "USMALLINT": BIGINT,
    "UTINYINT": BIGINT,
    "HUGEINT": BIGINT,
    "FLOAT": DOUBLE,
    "DOUBLE": DOUBLE,
    "DECIMAL": DECIMAL,
    "VARCHAR": STRING,
    "CHAR": STRING,
    "NVARCHAR": STRING,
    "TEXT": STRING,
    "DATE": DATE,
    "TIMESTAMP": TIMESTAMP,
    "TIMESTAMPNTZ": TIMESTAMP,  # what sqlglot (30.x) parses plain TIMESTAMP and DATETIME into
    "TIMESTAMP_S": TIMESTAMP,
    "TIMESTAMP_MS": TIMESTAMP,
    "TIMESTAMP_NS": TIMESTAMP,
    "TIMESTAMPTZ": TIMESTAMP,
    "DATETIME": TIMESTAMP,
    "INTERVAL": INTERVAL,
    "JSON": JSON,
    "STRUCT": JSON,
    "ARRAY": JSON,
    "LIST": JSON,
    "MAP": JSON,
}


def from_datatype(dtype: exp.DataType) -> SqlType | None:
    """Our type for a parsed sqlglot type, or None when we do not support it."""
    name = dtype.this.name if hasattr(dtype.this, "name") else str(dtype.this)
    base = _DTYPE_NAMES.get(name.upper())
    if base is None:
        return None
    if base is DECIMAL:
        params = [int(p.name) for p in dtype.expressions if p.name.isdigit()]
        precision = params[0] if params else 18
        scale = params[1] if len(params) > 1 else (0 if params else 3)
        return SqlType("DECIMAL", precision, scale)
    return base


def type_of_value(value: Any) -> SqlType:
    """The type a JSON-decoded value stands for when no declaration gives one."""
    if value is None:
        return NULL
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int):
        return BIGINT
    if isinstance(value, float):
        return DOUBLE
    if isinstance(value, Decimal):
        return decimal_type(value)
    if isinstance(value, str):
        return STRING
    if isinstance(value, dt.datetime):
        return TIMESTAMP
    if isinstance(value, dt.date):
        return DATE
    if isinstance(value, dt.timedelta):
        return INTERVAL
    return JSON


def decimal_type(value: Decimal) -> SqlType:
    _, digits, exponent = value.as_tuple()
    scale = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return SqlType("DECIMAL", max(len(digits), scale, 1), scale)


def unify(a: SqlType, b: SqlType) -> SqlType:
    """The common type of two values meeting in one column/CASE/COALESCE (ANY when unknown)."""
    if a.name == "NULL":
        return b
    if b.name == "NULL" or a == b:
        return a
    if a.is_any or b.is_any:
        return ANY
    if a.is_numeric and b.is_numeric:
        if "DOUBLE" in (a.name, b.name):
            return DOUBLE
        if a.name == "DECIMAL" or b.name == "DECIMAL":
            return DECIMAL
        return BIGINT
    if a.name == b.name:
        return SqlType(a.name)
    return ANY


def comparable(a: SqlType, b: SqlType) -> bool:
    """Whether ``a`` and ``b`` may meet in =, <, IN (ANY defers the check to run time)."""
    if a.is_any or b.is_any or a.name == b.name:
        return True
    if a.is_numeric and b.is_numeric:
        return True
    temporal = {"DATE", "TIMESTAMP"}
    return a.name in temporal and b.name in temporal


# -- conversions ----------------------------------------------------------------------------------
def check_precision(d: Decimal, precision: int, scale: int) -> Decimal:
    """``d`` (already at ``scale``) when it has at most ``precision`` digits, else the
    per-record :class:`NumericOverflowError`, as PostgreSQL raises for a NUMERIC(p, s)."""
    if len(d.as_tuple().digits) > precision and d:
        raise NumericOverflowError(
            E_NUMERIC_OVERFLOW.format(
                value=d, precision=precision, scale=scale, digits=precision - scale
            ),
            value=str(d),
            precision=precision,
            scale=scale,
        )
    return d


def decimal_context(precision: int | None) -> Context:
    """The context quantizing a DECIMAL(p, s) value: precision ``p`` makes ``quantize`` refuse a
    value with more digits (InvalidOperation) at no extra cost; None = the exact context."""
    if precision is None:
        return DECIMAL_CONTEXT
    return Context(prec=max(precision, 1), rounding=ROUND_HALF_UP)


def to_decimal(
    value: Any, scale: int | None = None, precision: int | None = None
) -> Decimal | None:
    """Exact conversion; a float goes through its shortest repr (the JSON text it came from).
    With ``precision`` (and ``scale``), a value with more digits is a NumericOverflowError."""
    if value is None:
        return None
    try:
        if isinstance(value, Decimal):
            d = value
        elif isinstance(value, bool):
            raise CastError(E_CAST.format(value=_short(value), type="DECIMAL"))
        elif isinstance(value, (int, str)):
            d = Decimal(value.strip() if isinstance(value, str) else value)
        elif isinstance(value, float):
            d = Decimal(repr(value))
        else:
            raise CastError(E_CAST.format(value=_short(value), type="DECIMAL"))
        if not d.is_finite():
            raise CastError(E_CAST.format(value=_short(value), type="DECIMAL"))
        if scale is not None:
            d = d.quantize(Decimal(1).scaleb(-scale), context=DECIMAL_CONTEXT)
            if precision is not None:
                check_precision(d, precision, scale)
        return d
    except InvalidOperation as exc:
        raise CastError(E_CAST.format(value=_short(value), type="DECIMAL")) from exc


def to_double(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise CastError(E_CAST.format(value=_short(value), type="DOUBLE"))
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise CastError(E_CAST.format(value=_short(value), type="DOUBLE")) from exc


def to_bigint(value: Any) -> int | None:
    """A 64-bit integer; out of that range (or not a number) is a :class:`CastError`."""
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    n: int | None = None
    try:
        if isinstance(value, int):
            n = value
        elif isinstance(value, str):
            n = int(value.strip())
        elif isinstance(value, (float, Decimal)):
            # SQL casts round half away from zero (PostgreSQL, DuckDB).
            n = int(
                Decimal(repr(value) if isinstance(value, float) else value).quantize(
                    Decimal(1), rounding=ROUND_HALF_UP, context=DECIMAL_CONTEXT
                )
            )
    except (ValueError, ArithmeticError) as exc:
        raise CastError(E_CAST.format(value=_short(value), type="BIGINT")) from exc
    if n is None or not BIGINT_MIN <= n <= BIGINT_MAX:
        raise CastError(E_CAST.format(value=_short(value), type="BIGINT"))
    return n


def to_string(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    return str(value)


def to_boolean(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "t", "1", "yes"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "f", "0", "no"):
        return False
    if isinstance(value, int):
        return value != 0
    raise CastError(E_CAST.format(value=_short(value), type="BOOLEAN"))


#: The functions that turn epoch milliseconds into a TIMESTAMP and back (named in type errors).
E_EPOCH_HINT = (
    "; a BIGINT holding epoch milliseconds becomes a TIMESTAMP with TIMESTAMP_MILLIS({bigint})"
    " (or EPOCH_MS), and a TIMESTAMP becomes epoch milliseconds with UNIX_MILLIS({timestamp})"
)


def mismatch_hint(a: SqlType, b: SqlType, left: str = "x", right: str = "y") -> str:
    """A hint for operands that cannot meet: a BIGINT against a TIMESTAMP or DATE is almost
    always epoch milliseconds against a point in time."""
    temporal = ("TIMESTAMP", "DATE")
    if a.name == "BIGINT" and b.name in temporal:
        return E_EPOCH_HINT.format(bigint=left, timestamp=right)
    if b.name == "BIGINT" and a.name in temporal:
        return E_EPOCH_HINT.format(bigint=right, timestamp=left)
    return ""


def converter(t: SqlType) -> Callable[[Any], Any] | None:
    """How to read a JSON-decoded value into a column declared ``t`` (None: keep as is)."""
    if t.name == "DECIMAL":
        scale, precision = t.scale, t.precision
        quantum = Decimal(1).scaleb(-scale) if scale is not None else None
        # quantize under the column's precision raises past p digits: to_decimal then reports it.
        ctx = decimal_context(precision if scale is not None else None)

        def dec(v: Any) -> Any:
            tv = type(v)
            try:
                if tv is Decimal and (quantum is None or v.is_finite()):
                    # A no-op when the scale fits (positional arguments: keywords are slow).
                    return v if quantum is None else v.quantize(quantum, None, ctx)
                if tv is float and quantum is not None and math.isfinite(v):
                    # to_decimal's own path, inlined (a hot path: DECIMAL columns of
                    # float-decoded tables): the shortest repr is the JSON text, not the binary.
                    return Decimal(repr(v)).quantize(quantum, None, ctx)
            except ArithmeticError:
                pass  # too many digits: to_decimal raises the CastError / NumericOverflowError
            return to_decimal(v, scale, precision)

        return dec
    if t.name == "DOUBLE":
        return lambda v: v if type(v) is float else to_double(v)
    if t.name == "BIGINT":
        return lambda v: v if type(v) is int and BIGINT_MIN <= v <= BIGINT_MAX else to_bigint(v)
    if t.name == "STRING":
        return lambda v: v if type(v) is str else to_string(v)
    if t.name == "BOOLEAN":
        return lambda v: v if type(v) is bool else to_boolean(v)
    if t.name == "DATE":
        return to_date
    if t.name == "TIMESTAMP":
        return to_timestamp
    if t.name == "INTERVAL":
        return to_interval
    return None


def cast(value: Any, t: SqlType) -> Any:
    conv = converter(t)
    return value if conv is None or value is None else conv(value)


def divide_decimal(a: Decimal, b: Decimal) -> Decimal:
    """DECIMAL / DECIMAL (and AVG of DECIMAL), as PostgreSQL's numeric division: the quotient
    keeps at least :data:`MIN_SIGNIFICANT_DIGITS` significant digits and at least the scale of
    either operand, rounded half away from zero. ``b`` must not be zero."""
    q = DECIMAL_CONTEXT.divide(a, b)
    scale = max(_scale(a), _scale(b))
    if q:
        scale = max(scale, MIN_SIGNIFICANT_DIGITS - q.adjusted() - 1)
    q = q.quantize(Decimal(1).scaleb(-scale), context=DECIMAL_CONTEXT)
    return q or q.copy_abs()  # SQL has no negative zero: 0 / -1.0 is 0.0 (PostgreSQL, DuckDB)


def multiply_decimal(a: Decimal | int, b: Decimal | int) -> Decimal:
    """DECIMAL * DECIMAL, exact. Decimal keeps the sign of a zero product (0 * -1.00 = -0.00);
    SQL has no negative zero (PostgreSQL and DuckDB answer 0.00), and -0.00 would print as such."""
    p = _MULTIPLY(a, b)
    return p or p.copy_abs()


def _scale(d: Decimal) -> int:
    e = d.as_tuple().exponent
    return -e if isinstance(e, int) and e < 0 else 0


__all__ = [
    "EPOCH",
    "event_timestamp",
    "millis_to_timestamp",
    "multiply_decimal",
    "timestamp_to_millis",
    "to_date",
    "to_interval",
    "to_timestamp",
]
