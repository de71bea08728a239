"""ClickHouse column types against ours, values read exactly, and probe values as SQL literals.

ClickHouse writes its types as ``Nullable(Decimal(12, 2))``, ``LowCardinality(String)``,
``DateTime('Europe/Paris')``. :func:`family_type` turns one into the type text
:func:`sources.types.fits` and :func:`sources.catalog.sql_type` understand (``numeric(12,2)``,
``bigint``, ``text``, ``timestamp with time zone``), so a declared column is checked the same
way as against PostgreSQL or DuckDB.

Values arrive as JSON (``FORMAT JSONCompact``), parsed with ``parse_float=Decimal`` so nothing
goes through a float: 64-bit integers (quoted by old servers, bare by new ones) read as exact
Python ints, even past 2^53 or 2^63 (UInt64); decimals keep their digits and are brought to the
declared scale (new versions print ``1.50`` as ``1.5``); a ``DateTime`` is a wall-clock text in
the column's zone (or the server's) and becomes an aware UTC ``datetime``, as PostgreSQL's
``timestamptz`` does.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

_WRAPPERS = re.compile(r"^(?:Nullable|LowCardinality)\((.*)\)$")
_DECIMAL = re.compile(r"^Decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)$")
_DECIMAL_N = re.compile(r"^Decimal(32|64|128|256)\(\s*(\d+)\s*\)$")
_DECIMAL_DIGITS = {"32": 9, "64": 18, "128": 38, "256": 76}
_DATETIME = re.compile(r"^DateTime(?:64)?(?:\((.*)\))?$")
_ZONE = re.compile(r"'((?:[^'\\]|\\.)*)'")
_DECLARED_DECIMAL = re.compile(r"^DECIMAL\((\d+),(\d+)\)$")

#: ClickHouse base type → the type text of :data:`sources.types._FAMILIES`.
_BASE = {
    "Int8": "tinyint",
    "Int16": "smallint",
    "Int32": "integer",
    "Int64": "bigint",
    "UInt8": "utinyint",
    "UInt16": "usmallint",
    "UInt32": "uinteger",
    "UInt64": "ubigint",
    "Float32": "real",
    "Float64": "double",
    "String": "text",
    "UUID": "uuid",
    "Bool": "boolean",
    "Date": "date",
    "Date32": "date",
}


def unwrap(ch_type: str) -> str:
    """``Nullable(LowCardinality(String))`` → ``String``."""
    t = ch_type.strip()
    while (m := _WRAPPERS.match(t)) is not None:
        t = m.group(1).strip()
    return t


def family_type(ch_type: str) -> str:
    """The type text our checks understand for a ClickHouse type (the type itself when none)."""
    t = unwrap(ch_type)
    if t in _BASE:
        return _BASE[t]
    if (m := _DECIMAL.match(t)) is not None:
        return f"numeric({m.group(1)},{m.group(2)})"
    if (m := _DECIMAL_N.match(t)) is not None:
        return f"numeric({_DECIMAL_DIGITS[m.group(1)]},{m.group(2)})"
    if t.startswith("FixedString(") or t.startswith("Enum8(") or t.startswith("Enum16("):
        return "varchar"
    if _DATETIME.match(t):
        return "timestamp with time zone"
    return ch_type


def column_zone(ch_type: str) -> str | None:
    """The zone named in ``DateTime('Zone')`` / ``DateTime64(3, 'Zone')``, else None."""
    m = _DATETIME.match(unwrap(ch_type))
    if m is None or not m.group(1):
        return None
    z = _ZONE.search(m.group(1))
    return z.group(1) if z else None


# -- values read ------------------------------------------------------------------------------
Reader = Callable[[Any], Any]


def _int(v: Any) -> Any:
    return v if v is None or type(v) is int else int(v)


def _float(v: Any) -> Any:
    if v is None or type(v) is float:
        return v
    return float(v)  # a Decimal from the JSON text, or "inf"/"nan" quoted


def _str(v: Any) -> Any:
    return v if v is None or type(v) is str else str(v)


def _bool(v: Any) -> Any:
    return v if v is None or type(v) is bool else bool(int(v))


def _date(v: Any) -> Any:
    return None if v is None else dt.date.fromisoformat(v)


def _decimal(scale: int) -> Reader:
    quantum = Decimal(1).scaleb(-scale)

    def read(v: Any) -> Any:
        if v is None:
            return None
        return Decimal(v if type(v) is not float else repr(v)).quantize(quantum)

    return read


def _timestamp(zone: str) -> Reader:
    tz = ZoneInfo(zone)
    utc = dt.UTC

    def read(v: Any) -> Any:
        if v is None:
            return None
        local = dt.datetime.fromisoformat(v)  # "2024-01-01 00:00:00[.123]" in the column's zone
        return local.replace(tzinfo=tz).astimezone(utc)

    return read


def reader(declared: str, ch_type: str, server_zone: str) -> Reader:
    """How a value of ClickHouse type ``ch_type`` reads as the declared SQL type."""
    t = declared.upper()
    if t == "BIGINT":
        return _int
    if t == "DOUBLE":
        return _float
    if t == "STRING":
        return _str
    if t == "BOOLEAN":
        return _bool
    if t == "DATE":
        return _date
    if t == "TIMESTAMP":
        return _timestamp(column_zone(ch_type) or server_zone)
    if (m := _DECLARED_DECIMAL.match(t)) is not None:
        return _decimal(int(m.group(2)))
    return lambda v: v


# -- probe values as literals -----------------------------------------------------------------
def quote_string(s: str) -> str:
    """A ClickHouse string literal (backslash escapes, as the server reads them)."""
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _decimal_fits(v: Decimal, precision: int, scale: int) -> bool:
    """Whether ``v`` can equal a value of ``Decimal(precision, scale)``: a probe with more
    fraction digits than the scale cannot (and embedded ClickHouse rounds it instead of saying
    so: ``Decimal(12,2) IN ('1.501')`` would match 1.50)."""
    if not v.is_finite():
        return False
    exp = v.normalize().as_tuple().exponent
    if isinstance(exp, int) and -exp > scale:
        return False
    return abs(v) < Decimal(10) ** (precision - scale)


_INT_RANGE = {
    "Int8": (-(2**7), 2**7), "Int16": (-(2**15), 2**15), "Int32": (-(2**31), 2**31),
    "Int64": (-(2**63), 2**63), "UInt8": (0, 2**8), "UInt16": (0, 2**16), "UInt32": (0, 2**32),
    "UInt64": (0, 2**64),
}  # fmt: skip
_NUMERIC = re.compile(r"^numeric\((\d+),(\d+)\)$")
Literal = Callable[[Any], "str | None"]


def _none(v: Any) -> str | None:
    return None


def literal(declared: str, ch_type: str) -> Literal:
    """How a probe value becomes a literal comparable with a column declared ``declared`` (of
    ClickHouse type ``ch_type``): None for a value that cannot equal any value of the column
    (left out of the ``IN`` list: it could only make the server fail, or round)."""
    t, base = declared.upper(), unwrap(ch_type)
    if t == "BIGINT":
        lo, hi = _INT_RANGE.get(base, (-(2**63), 2**64))
        # Quoted: the keys go in one array literal, where 18.16 finds no common type for a
        # negative Int64 and a UInt64-sized one; CAST to the column's type reads the text.
        return lambda v: f"'{v}'" if type(v) is int and lo <= v < hi else None
    if t == "STRING":
        return _string_literal(base)
    if t == "DOUBLE":
        return _double
    if t == "BOOLEAN":
        return lambda v: ("true" if v else "false") if type(v) is bool else None
    if t == "DATE":
        return _date_literal
    if t == "TIMESTAMP":
        return _timestamp_literal
    num = _NUMERIC.match(family_type(ch_type))
    if _DECLARED_DECIMAL.match(t) is not None and num is not None:
        return _decimal_literal(int(num.group(1)), int(num.group(2)))
    return _none


_ENUM_NAME = re.compile(r"'((?:[^'\\]|\\.)*)'\s*=")
_FIXED = re.compile(r"^FixedString\((\d+)\)$")


def _string_literal(base: str) -> Literal:
    """Strings the column can hold: the cast of the key array to an ``Enum`` fails on a name
    it lacks, to ``FixedString(n)`` on a longer string, to ``UUID`` on a malformed one (and a
    failed query would count against the breaker): those are left out."""
    check: Callable[[str], bool] = lambda v: True  # noqa: E731
    if base.startswith("Enum"):
        names = {n.replace("\\'", "'") for n in _ENUM_NAME.findall(base)}
        check = names.__contains__
    elif (m := _FIXED.match(base)) is not None:
        size = int(m.group(1))
        check = lambda v: len(v.encode()) <= size  # noqa: E731
    elif base == "UUID":
        check = _is_uuid

    def lit(v: Any) -> str | None:
        return quote_string(v) if type(v) is str and check(v) else None

    return lit


def _is_uuid(v: str) -> bool:
    try:
        uuid.UUID(v)
    except ValueError:
        return False
    return True


def _double(v: Any) -> str | None:
    if type(v) is bool or not isinstance(v, (int, float, Decimal)):
        return None
    f = float(v)
    return repr(f) if f == f and f not in (float("inf"), float("-inf")) else None


def _date_literal(v: Any) -> str | None:
    if isinstance(v, dt.date) and not isinstance(v, dt.datetime):
        return f"toDate('{v.isoformat()}')"
    return None


def _timestamp_literal(v: Any) -> str | None:
    if not isinstance(v, dt.datetime):
        return None
    utc = v if v.tzinfo is None else v.astimezone(dt.UTC).replace(tzinfo=None)
    text = utc.isoformat(sep=" ")
    if utc.microsecond:
        return f"toDateTime64('{text}', 6, 'UTC')"
    return f"toDateTime('{text}', 'UTC')"


def _decimal_literal(precision: int, scale: int) -> Literal:
    def lit(v: Any) -> str | None:
        if type(v) is bool or not isinstance(v, (int, str, Decimal)):
            return None
        try:
            d = v if type(v) is Decimal else Decimal(str(v))
        except InvalidOperation:
            return None
        if not _decimal_fits(d, precision, scale):
            return None
        # A string literal: the server converts it to the column's Decimal exactly (a float
        # literal does not meet a Decimal column, a toDecimal128 one not a Decimal(12,2)).
        return quote_string(format(d, "f"))

    return lit
