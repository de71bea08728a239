"""Record values in and rows out: JSON bytes → typed dict, row → JSON bytes, row → message key.

Decoding picks the cheapest exact path per record: orjson (about 3x faster than the stdlib) unless
the value may hold a number with a fraction or an exponent whose digits must stay exact — then the
stdlib decoder with ``Decimal`` floats. Declared stream columns are then read into their SQL types
(DECIMAL keeps its scale), exactly as the offline runner does.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import msgspec
import orjson

from core import codec
from core.codec import JSONDecodeError
from sql import SqlType, converter
from tables.keys import key_bytes

E_NOT_JSON = "value is not valid JSON: {error}"
E_NOT_OBJECT = "value is a JSON {kind}, not an object"
E_NULL_VALUE = "record has no value (tombstone)"
E_ENCODE = "cannot encode the output row: {error}"
E_KEY = "cannot make a message key of {columns}: {error}"

# A digit followed by '.', 'e' or 'E': the value may hold a non-integer number. Strings like
# "v1.2" match too; they only cost the slower exact decoder, never a wrong value.
_MAY_HAVE_FRACTION = re.compile(rb"[0-9][.eE]").search


#: SQL types whose converter keeps a value of this exact Python type as it is.
_NATIVE: dict[str, type] = {"BIGINT": int, "STRING": str, "DOUBLE": float, "BOOLEAN": bool}


class DecodeError(Exception):
    """A record value the query cannot read; ``reason`` goes to the dead-letter headers."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


Decoder = Callable[[bytes | None], dict[str, Any]]
#: Significant decimal digits every double round-trips through its shortest repr (DBL_DIG).
FLOAT_EXACT_DIGITS = 15


def make_decoder(columns: Mapping[str, SqlType] | None) -> Decoder:
    """A decoder for a stream declared with ``columns`` (None: an open stream, no casts).

    The column checks are generated as straight-line code (one function per stream): a loop
    over the columns cost about as much as the JSON parse itself.
    """
    # DECIMAL(p, s) with p <= 15 reads exactly from a float's shortest repr (a double keeps any
    # 15 significant digits); a wider DECIMAL, one without a scale, or an undeclared column needs
    # the digits as written.
    needs_exact = columns is None or any(
        t.name == "DECIMAL" and (t.scale is None or (t.precision or 0) > FLOAT_EXACT_DIGITS)
        for t in columns.values()
    )
    env: dict[str, Any] = {
        "fast": orjson.loads,
        "exact": codec.loads_exact,
        "may_fraction": _MAY_HAVE_FRACTION,
        "DecodeError": DecodeError,
        "JSONDecodeError": JSONDecodeError,
        "E_NULL_VALUE": E_NULL_VALUE,
        "E_NOT_JSON": E_NOT_JSON,
        "E_NOT_OBJECT": E_NOT_OBJECT,
        "float": float,
        "type": type,
        "dict": dict,
    }
    parse = "exact(raw) if may_fraction(raw) else fast(raw)" if needs_exact else "fast(raw)"
    lines = [
        "def decode(raw):",
        "    if raw is None:",
        "        raise DecodeError(E_NULL_VALUE)",
        "    try:",
        f"        value = {parse}",
        "    except (JSONDecodeError, ValueError, UnicodeDecodeError) as exc:",
        "        raise DecodeError(E_NOT_JSON.format(error=exc)) from None",
        "    if type(value) is not dict:",
        "        raise DecodeError(E_NOT_OBJECT.format(kind=type(value).__name__))",
        "    get = value.get",
    ]
    for i, (name, t) in enumerate((columns or {}).items()):
        conv = converter(t)
        if conv is None:
            continue
        env[f"conv{i}"] = conv
        col = repr(name)
        lines.append(f"    v = get({col})")
        native = _NATIVE.get(t.name)
        if native is not None:
            # A value already of the column's type (most of them) costs no call.
            env[f"native{i}"] = native
            lines += [
                f"    if v is not None and type(v) is not native{i}:",
                f"        value[{col}] = conv{i}(v)",
            ]
        elif t.name == "DECIMAL":
            env[f"cache{i}"], env[f"fill{i}"] = _float_cache(conv)
            lines += [
                "    if v is not None:",
                "        if type(v) is float:",
                f"            d = cache{i}.get(v)",
                f"            value[{col}] = d if d is not None else fill{i}(v)",
                "        else:",
                f"            value[{col}] = conv{i}(v)",
            ]
        else:
            lines += ["    if v is not None:", f"        value[{col}] = conv{i}(v)"]
    lines.append("    return value")
    # Column names enter the source only as repr() literals; values are bound in env.
    exec(compile("\n".join(lines), "<decoder>", "exec"), env)
    decode: Decoder = env["decode"]
    return decode


#: Distinct float values a DECIMAL column's decoder remembers (then it starts over).
FLOAT_CACHE = 65_536


def _float_cache(conv: Callable[[Any], Any]) -> tuple[dict[float, Any], Callable[[Any], Any]]:
    """A DECIMAL column's float cache and the function filling it: exact digits cost a
    ``repr``, a parse and a quantize (~1 µs), and prices, amounts and rates repeat. The same
    float always converts to the same (immutable) Decimal; zeros are left out (0.0 == -0.0, but
    their digits differ) and a value ``conv`` rejects is never cached (it raises again)."""
    cache: dict[float, Any] = {}

    def fill(v: float) -> Any:
        d = conv(v)
        if v:
            if len(cache) >= FLOAT_CACHE:
                cache.clear()
            cache[v] = d
        return d

    return cache, fill


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
    """A row as compact JSON (exact decimals; intervals as seconds). Raises TypeError."""
    return orjson.dumps(row, default=_default)


Encoder = Callable[[Any], bytes]
#: Output column types every value of which msgspec writes as :func:`encode_row` does.
_PLAIN_TYPES = frozenset({"BIGINT", "DOUBLE", "STRING", "BOOLEAN", "DECIMAL", "NULL"})


def make_encoder(names: Sequence[str], types: Sequence[SqlType] | None) -> Encoder:
    """:func:`encode_row`, or an equivalent faster one for rows of only plain column types.

    orjson has no DECIMAL: it calls back into Python for each one (~0.3 µs); msgspec writes a
    Decimal's digits itself. The same JSON values either way, with two differences of spelling:
    a DECIMAL with a positive exponent keeps it (``1.0E+4``; ``encode_row`` writes ``10000``)
    and an integer beyond 64 bits is written (orjson refuses it: a dead letter). A non-finite
    DECIMAL still gets ``encode_row``'s error.
    """
    if not types or any(t.name not in _PLAIN_TYPES for t in types):
        return encode_row
    fast = msgspec.json.Encoder(decimal_format="number").encode
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
