"""Record values in: JSON bytes → typed dict (rows out: :mod:`agents.encode`, re-exported here).

Decoding picks the cheapest exact path per record: orjson (about 3x faster than the stdlib)
unless the value may hold a number whose digits orjson would not keep — a fraction or exponent
where a wide DECIMAL column or an open stream needs every digit, an integer beyond 64 bits — then
msgspec/the stdlib with ``Decimal`` floats (:func:`core.codec.parse_exact`). A float that lands in
a BIGINT or STRING column, or a narrow DECIMAL's float whose text may round differently, makes the
decoder re-decode that record exactly (rare: ``1.50`` stays ``'1.50'`` in a STRING column).
Declared stream columns are then read into their SQL types (DECIMAL keeps its scale and must fit
its precision, BIGINT must fit 64 bits), exactly as the offline runner does. Every failure is a
:class:`DecodeError` or a :class:`sql.errors.CastError` of the record, never of the query.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import msgspec
import orjson

from agents.encode import (
    E_ENCODE,
    E_KEY,
    Encoder,
    KeyFn,
    encode_row,
    fast_encoder,
    make_encoder,
    make_key,
)
from core import codec
from core.codec import E_TOO_DEEP
from sql import BIGINT_MAX, BIGINT_MIN, SqlType, converter, decimal_context

#: Rows out live in agents.encode; their names stay importable from here.
__all__ = [
    "E_ENCODE",
    "E_KEY",
    "DecodeError",
    "Decoder",
    "Encoder",
    "KeyFn",
    "RowCheck",
    "encode_row",
    "fast_encoder",
    "make_decoder",
    "make_encoder",
    "make_key",
    "make_row_check",
]

E_NOT_JSON = "value is not valid JSON: {error}"
E_NOT_OBJECT = "value is a JSON {kind}, not an object"
E_NULL_VALUE = "record has no value (tombstone)"
E_ROW_NOT_OBJECT = "row is a JSON {kind}, not an object with the declared columns"
E_ROW_COLUMN = "column {column!r} does not fit {type}: {error}"

#: When the exact decoder runs instead of orjson for a wide DECIMAL column or an open stream: a
#: fraction or exponent, or 19+ digits (an integer maybe beyond 64 bits). False positives —
#: "v1.2" in a string — only cost the slower decoder, never a wrong value.
_FRACTION_OR_LONG = re.compile(rb"[0-9](?:[.eE]|[0-9]{18})").search


#: SQL types whose converter keeps a value of this exact Python type as it is.
_NATIVE: dict[str, type] = {"BIGINT": int, "STRING": str, "DOUBLE": float, "BOOLEAN": bool}
#: Column types whose value read from a float may have lost digits: the record is re-decoded.
_REDECODE = frozenset({"BIGINT", "STRING"})


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
    over the columns cost about as much as the JSON parse itself. Two are generated: the fast
    one (orjson unless the text asks for exact digits) and the exact one it hands a record to
    when a float reached a column that must keep its digits.
    """
    # DECIMAL(p, s) with p <= 15 reads exactly from a float's shortest repr (a double keeps any
    # 15 significant digits); a wider DECIMAL, one without a scale, or an undeclared column needs
    # the digits as written.
    wide = columns is None or any(
        t.name == "DECIMAL" and (t.scale is None or (t.precision or 0) > FLOAT_EXACT_DIGITS)
        for t in columns.values()
    )
    limit = codec.max_depth()
    env: dict[str, Any] = {
        "fast": orjson.loads,
        "exact": codec.parse_exact,
        # parse_exact's first try, called directly; on a failure parse_exact runs (its fallback
        # and its error message).
        "exact_c": msgspec.json.Decoder(float_hook=Decimal).decode,
        "too_deep": codec.too_deep,
        "limit": limit,
        "E_TOO_DEEP": E_NOT_JSON.format(error=E_TOO_DEEP.format(limit=limit)),
        "may_exact": _FRACTION_OR_LONG,
        "DecodeError": DecodeError,
        "E_NULL_VALUE": E_NULL_VALUE,
        "E_NOT_JSON": E_NOT_JSON,
        "Exception": Exception,
        "float": float,
        "type": type,
        "dict": dict,
        "INT_MIN": BIGINT_MIN,
        "INT_MAX": BIGINT_MAX,
        "Decimal": Decimal,
        "ArithmeticError": ArithmeticError,
    }
    exec(compile(_source("decode_exact", columns, env, exact=True), "<decoder>", "exec"), env)
    if _exact_first(columns):
        exact_decode: Decoder = env["decode_exact"]
        return exact_decode
    parse = "exact(raw) if may_exact(raw) else fast(raw)" if wide else "fast(raw)"
    exec(compile(_source("decode", columns, env, parse=parse), "<decoder>", "exec"), env)
    decode: Decoder = env["decode"]
    return decode


#: Column types the exact decoder reads at least as fast as the float path (``_exact_first``).
_EXACT_FIRST = frozenset({"BIGINT", "STRING", "DECIMAL"})


def _exact_first(columns: Mapping[str, SqlType] | None) -> bool:
    """Whether the exact decoder is the fast one too: a stream with a DECIMAL column and only
    BIGINT, STRING and scaled DECIMAL columns. msgspec reads every JSON fraction into a Decimal
    in C (exact by construction), and a DECIMAL column then costs one quantize — against a
    float parse, a cache probe and, for each new value, a repr, a parse and a quantize in Python
    (2.1 → 0.6 µs per record on bench.pipeline_stages --job enrich). Columns whose conversion
    of a float and of its Decimal might differ (DOUBLE, BOOLEAN, time types, JSON) keep the float
    path."""
    if not columns:
        return False
    types = list(columns.values())
    return any(t.name == "DECIMAL" for t in types) and all(
        t.name in _EXACT_FIRST and (t.name != "DECIMAL" or t.scale is not None) for t in types
    )


def _source(
    name: str,
    columns: Mapping[str, SqlType] | None,
    env: dict[str, Any],
    parse: str = "exact_c(raw)",
    exact: bool = False,
) -> str:
    """The source of one decoder function; the values it uses are bound in ``env``."""
    lines = [
        f"def {name}(raw):",
        "    if raw is None:",
        "        raise DecodeError(E_NULL_VALUE)",
        # A short record cannot nest deeper than the limit; a longer one costs two C-speed counts
        # and only one with more brackets than the limit is scanned.
        "    if (",
        "        len(raw) > limit",
        '        and raw.count(b"[") + raw.count(b"{") > limit',
        "        and too_deep(raw, limit)",
        "    ):",
        "        raise DecodeError(E_TOO_DEEP)",
        "    try:",
        f"        value = {parse}",
    ]
    if exact:
        lines += [
            "    except Exception:",
            "        try:",
            "            value = exact(raw)",
            "        except Exception as exc:",
            "            raise DecodeError(E_NOT_JSON.format(error=exc)) from None",
        ]
    else:
        # What orjson refuses (a number beyond a double's range, NaN) is read as the exact
        # decoder reads it — or refused with its error.
        lines += ["    except Exception:", "        return decode_exact(raw)"]
    lines += [
        "    if type(value) is not dict:",
        "        raise DecodeError(E_NOT_OBJECT.format(kind=type(value).__name__))",
        "    get = value.get",
    ]
    env["E_NOT_OBJECT"] = E_NOT_OBJECT
    for i, (col_name, t) in enumerate((columns or {}).items()):
        conv = converter(t)
        if conv is None:
            continue
        env[f"conv{i}"] = conv
        col = repr(col_name)
        lines.append(f"    v = get({col})")
        native = _NATIVE.get(t.name)
        redo = (
            []
            if exact or t.name not in _REDECODE
            else ["        if type(v) is float:", "            return decode_exact(raw)"]
        )
        if t.name == "BIGINT":
            # An int beyond 64 bits is converted: the converter refuses it (a CastError). Both
            # sides are checked on every path: a fast decoder's fallback can hand over an int
            # below -2^63 too (hypothesis found -10^19 accepted when only the top was checked).
            lines += [
                "    if v is not None and (type(v) is not int or v > INT_MAX or v < INT_MIN):",
                *redo,
                f"        value[{col}] = conv{i}(v)",
            ]
        elif native is not None:
            # A value already of the column's type (most of them) costs no call.
            env[f"native{i}"] = native
            lines += [
                f"    if v is not None and type(v) is not native{i}:",
                *redo,
                f"        value[{col}] = conv{i}(v)",
            ]
        elif t.name == "DECIMAL" and exact and t.scale is not None:
            # The converter's own Decimal branch, inlined (a call per record costs more than
            # the quantize): a no-op when the scale fits; past p digits the converter decides.
            env[f"quantum{i}"] = Decimal(1).scaleb(-t.scale)
            env[f"ctx{i}"] = decimal_context(t.precision)
            lines += [
                "    if v is not None:",
                "        if type(v) is Decimal and v.is_finite():",
                "            try:",
                f"                value[{col}] = v.quantize(quantum{i}, None, ctx{i})",
                "            except ArithmeticError:",
                f"                value[{col}] = conv{i}(v)",
                "        else:",
                f"            value[{col}] = conv{i}(v)",
            ]
        elif t.name == "DECIMAL" and exact:
            lines += ["    if v is not None:", f"        value[{col}] = conv{i}(v)"]
        elif t.name == "DECIMAL":
            env[f"cache{i}"], env[f"fill{i}"] = _float_cache(conv, t.scale)
            lines += [
                "    if v is not None:",
                "        if type(v) is float:",
                f"            d = cache{i}.get(v)",
                "            if d is None:",
                f"                d = fill{i}(v)",
                "                if d is None:",
                "                    return decode_exact(raw)",
                f"            value[{col}] = d",
                "        else:",
                f"            value[{col}] = conv{i}(v)",
            ]
        else:
            lines += ["    if v is not None:", f"        value[{col}] = conv{i}(v)"]
    lines.append("    return value")
    # Column names enter the source only as repr() literals; values are bound in env.
    return "\n".join(lines)


RowCheck = Callable[[Any], str | None]


def make_row_check(columns: Mapping[str, SqlType]) -> RowCheck:
    """A declared table's row check: the reason a decoded row does not fit ``columns``, or None.

    The same conversions a typed stream's decoder makes (:func:`sql.types.converter`: lenient
    casts such as ``"5"`` for a BIGINT, never a value out of range, a DECIMAL beyond its
    precision, NaN or Infinity): a row that passes is one every query can read. Undeclared
    fields are not checked.
    """
    convs = [(name, t, conv) for name, t in columns.items() if (conv := converter(t)) is not None]

    def check(row: Any) -> str | None:
        if type(row) is not dict:
            return E_ROW_NOT_OBJECT.format(kind=type(row).__name__)
        for name, t, conv in convs:
            v = row.get(name)
            if v is not None:
                try:
                    conv(v)
                except Exception as exc:  # a CastError, or any failure of an odd value
                    return E_ROW_COLUMN.format(column=name, type=t, error=exc)
        return None

    return check


#: Distinct float values a DECIMAL column's decoder remembers (then it starts over).
FLOAT_CACHE = 65_536


def _float_cache(
    conv: Callable[[Any], Any], scale: int | None
) -> tuple[dict[float, Any], Callable[[float], Any]]:
    """A DECIMAL column's float cache and the function filling it: exact digits cost a
    ``repr``, a parse and a quantize (~1 µs), and prices, amounts and rates repeat. The same
    float always converts to the same (immutable) Decimal; zeros are left out (0.0 == -0.0, but
    their digits differ) and a value ``conv`` rejects is never cached (it raises again).

    ``fill`` answers None when the float cannot say how its text rounds: a text of more than 15
    significant digits (``0.124999999999999999``) becomes a float whose shortest repr differs
    from it (``0.125``) — which changes the DECIMAL only when a rounding boundary of the column's
    scale lies within the float's precision of it. Then (rarely) the record is re-decoded from its
    digits; no text is scanned for long numbers on the common path."""
    cache: dict[float, Any] = {}
    scaled = 10.0 ** (scale or 0)

    def fill(v: float) -> Any:
        if scale is None or not math.isfinite(v):
            return None  # no float reads into it: the exact decoder reads the digits (or fails)
        x = v * scaled
        # The text's value and the product differ from x by a few units of x's last place.
        if abs(x % 1.0 - 0.5) <= abs(x) * 1e-15 + 1e-300:
            return None
        d = conv(v)
        if v:
            if len(cache) >= FLOAT_CACHE:
                cache.clear()
            cache[v] = d
        return d

    return cache, fill
