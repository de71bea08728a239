"""Declared column types against the database's, and probe values in the key column's type.

A declared type *fits* a database column when every value the column can hold reads as that
type without loss: DECIMAL(p,s) needs a NUMERIC of the same scale and no more digits, TIMESTAMP
a timestamp (``timestamptz`` keeps its zone), BIGINT any integer column.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

_FAMILIES: dict[str, tuple[str, ...]] = {
    "BIGINT": ("bigint", "integer", "smallint", "int", "int2", "int4", "int8", "tinyint",
               "hugeint", "ubigint", "uinteger", "usmallint", "utinyint", "int32", "int64"),
    "DOUBLE": ("double precision", "double", "real", "float", "float4", "float8"),
    "STRING": ("text", "varchar", "character varying", "character", "char", "bpchar", "uuid",
               "string", "name"),
    "BOOLEAN": ("boolean", "bool"),
    "DATE": ("date",),
    "TIMESTAMP": ("timestamp with time zone", "timestamptz", "timestamp without time zone",
                  "timestamp", "timestamp_s", "timestamp_ms", "timestamp_ns"),
    "JSON": ("json", "jsonb"),
}  # fmt: skip
_NUMERIC = re.compile(r"^(?:numeric|decimal)\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)$")
_DECLARED_DECIMAL = re.compile(r"^DECIMAL\((\d+),(\d+)\)$")


def fits(declared: str, db_type: str) -> bool:
    """Whether a column of database type ``db_type`` reads as the declared SQL type."""
    db = db_type.strip().lower()
    dec = _DECLARED_DECIMAL.match(declared.upper())
    if dec is not None:
        num = _NUMERIC.match(db)
        if num is None:
            return False
        return int(num.group(2)) == int(dec.group(2)) and int(num.group(1)) <= int(dec.group(1))
    base = re.sub(r"\s*\(.*\)$", "", db)  # varchar(20) -> varchar
    return base in _FAMILIES.get(declared.upper(), ())


#: A probe value that cannot equal any value of the column (``'abc'`` for a BIGINT key).
BAD: Any = object()


def _to_int(v: Any) -> Any:
    t = type(v)
    if t is int:
        return v
    if t is str:
        s = v.strip()
        return int(s) if s.lstrip("-").isdigit() else BAD
    if t is float:
        return int(v) if v.is_integer() else BAD
    if t is Decimal:
        return int(v) if v == v.to_integral_value() else BAD
    return BAD


def _to_str(v: Any) -> Any:
    t = type(v)
    if t is str:
        return v
    if t is int or t is Decimal:
        return str(v)
    return BAD


def _to_decimal(v: Any) -> Any:
    if type(v) is Decimal:
        return v
    if type(v) is bool:
        return BAD
    try:
        return Decimal(str(v)) if isinstance(v, (int, float, str)) else BAD
    except InvalidOperation:
        return BAD


def _same(v: Any) -> Any:
    return v


def probe_converter(declared: str) -> Callable[[Any], Any]:
    """Converts a probe value to the column's Python type (or :data:`BAD`)."""
    t = declared.upper()
    if t == "BIGINT":
        return _to_int
    if t == "STRING":
        return _to_str
    if t.startswith("DECIMAL"):
        return _to_decimal
    return _same
