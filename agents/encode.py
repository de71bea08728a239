"""Rows out: row → JSON bytes (exact decimals), rows of plain types through msgspec, row →
message key. The decoding side is :mod:`agents.codec`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import msgspec
import orjson

from core import codec
from sql import SqlType
from tables.keys import key_bytes

E_ENCODE = "cannot encode the output row: {error}"
E_KEY = "cannot make a message key of {columns}: {error}"


def _default(obj: Any) -> Any:
    if type(obj) is Decimal:
        # A raw fragment keeps the digits and the scale (22.50 stays 22.50), never via float.
        # str() is the fast path; it writes exponents (1E+2) that format(, "f") spells out.
        text = str(obj)
        if text[-1].isdigit() and "E" not in text:
            return orjson.Fragment(text.encode())
    if isinstance(obj, Decimal):
        if not obj.is_finite():
            raise TypeError(f"cannot encode non-finite decimal {obj} as JSON")
        return orjson.Fragment(format(obj, "f").encode())
    if isinstance(obj, dt.timedelta):
        return obj.total_seconds()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=repr)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


def encode_row(row: Any) -> bytes:
    """A row as compact JSON (exact decimals; intervals as seconds; integers of any size).
    Raises TypeError."""
    try:
        return orjson.dumps(row, default=_default)
    except orjson.JSONEncodeError as exc:
        if "64-bit" not in str(exc):
            raise
        return orjson.dumps(codec.wide_ints(row), default=_default)


Encoder = Callable[[Any], bytes]
#: Output column types every value of which msgspec writes as :func:`encode_row` does.
_PLAIN_TYPES = frozenset({"BIGINT", "DOUBLE", "STRING", "BOOLEAN", "DECIMAL", "NULL"})


def make_encoder(names: Sequence[str], types: Sequence[SqlType] | None) -> Encoder:
    """:func:`encode_row`, or an equivalent faster one for rows of only plain column types.

    orjson has no DECIMAL: it calls back into Python for each one (~0.3 µs); msgspec writes a
    Decimal's digits itself. The same JSON values either way, with one difference of spelling:
    a DECIMAL with a positive exponent keeps it (``1.0E+4``; ``encode_row`` writes ``10000``).
    A non-finite DECIMAL still gets ``encode_row``'s error.
    """
    fast = fast_encoder(types)
    if fast is None or types is None:
        return encode_row
    decimals = tuple(n for n, t in zip(names, types, strict=True) if t.name == "DECIMAL")

    def encode(row: Any) -> bytes:
        for name in decimals:
            v = row.get(name)
            if type(v) is Decimal and not v.is_finite():
                return encode_row(row)  # raises, as for any row with it
        try:
            return fast(row)
        except (TypeError, ValueError, OverflowError):
            return encode_row(row)  # its own error, or what msgspec has no spelling for

    return encode


def fast_encoder(types: Sequence[SqlType] | None) -> Encoder | None:
    """msgspec's encoder when every output column is of a plain type, else None. It writes a
    non-finite DECIMAL as ``NaN``/``Infinity`` where :func:`encode_row` refuses it (the caller
    checks) and may raise TypeError/ValueError/OverflowError where ``encode_row`` does not."""
    if not types or any(t.name not in _PLAIN_TYPES for t in types):
        return None
    return msgspec.json.Encoder(decimal_format="number").encode


KeyFn = Callable[[Mapping[str, Any]], bytes | None]


def make_key(columns: Sequence[str]) -> KeyFn | None:
    """The message key of an output row: its key columns' text (one column) or a JSON array.

    None when the query has no key columns: the caller keeps the source record's key.
    """
    if not columns:
        return None
    if len(columns) == 1:
        (col,) = columns

        def one(row: Mapping[str, Any]) -> bytes | None:
            v = row.get(col)
            return None if v is None else key_bytes(v)

        return one

    cols = tuple(columns)

    def many(row: Mapping[str, Any]) -> bytes | None:
        return encode_row([row.get(c) for c in cols])

    return many
