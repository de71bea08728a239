"""JSON codec. orjson for speed; an exact variant where numbers must keep their decimal digits.

Both decoders are exact for integers of any size (orjson would read one beyond 64 bits as a
float: such a document goes to msgspec) and refuse documents nested deeper than
:func:`max_depth` levels (``TABLESTREAM_JSON_MAX_DEPTH``) with :class:`JSONDepthError` before
parsing, so no hostile document can exhaust the recursion of a parser. :func:`dumps` writes any
value these decoders return, integers beyond 64 bits included (as JSON numbers).
"""

from __future__ import annotations

import json
import operator
import re
from decimal import Decimal
from itertools import accumulate, count
from typing import Any

import msgspec
import orjson

from core.errors import TablestreamError

#: Raised by both decoders on malformed input (``orjson.JSONDecodeError`` subclasses it).
JSONDecodeError = json.JSONDecodeError

#: Default of ``TABLESTREAM_JSON_MAX_DEPTH``: nesting levels a JSON document may have.
DEFAULT_MAX_DEPTH = 256
E_TOO_DEEP = "JSON nested deeper than {limit} levels (TABLESTREAM_JSON_MAX_DEPTH)"

_max_depth = DEFAULT_MAX_DEPTH


class JSONDepthError(TablestreamError, ValueError):
    """A document nested deeper than the configured limit (also a ``ValueError``, as parse
    errors are: the decoders' callers catch those)."""


def set_max_depth(limit: int) -> None:
    """The nesting limit of every decoder made afterwards (the worker sets it at start)."""
    global _max_depth
    if limit < 1:
        raise ValueError(f"JSON max depth must be >= 1, not {limit}")
    _max_depth = limit


def max_depth() -> int:
    return _max_depth


# Brackets inside strings do not nest: strings are blanked before counting. Then an opening
# bracket counts 2 and a closing one 0: after k brackets the depth is (sum so far) - k.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_OPEN_CLOSE = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")
_NOT_BRACKET = bytes(set(range(256)) - set(b"[]{}"))


def too_deep(data: bytes | str, limit: int) -> bool:
    """Whether ``data`` nests deeper than ``limit``. The caller checks first that it has more
    than ``limit`` opening brackets (two C-speed counts); only then is it scanned, by C-level
    iterators (about 2 ms for 20,000 brackets) — never by a recursive parser."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    marks = _STRING.sub(b"", raw).translate(_OPEN_CLOSE, _NOT_BRACKET)
    return max(map(operator.sub, accumulate(marks), count(1)), default=0) > limit


def check_depth(data: bytes | str, limit: int) -> None:
    """Raises :class:`JSONDepthError` when ``data`` nests deeper than ``limit``."""
    if len(data) <= limit:
        return
    if isinstance(data, bytes):
        brackets = data.count(b"[") + data.count(b"{")
    else:
        brackets = data.count("[") + data.count("{")
    if brackets > limit and too_deep(data, limit):
        raise JSONDepthError(E_TOO_DEEP.format(limit=limit), limit=limit)


# 19 digits in a row: maybe an integer beyond orjson's 64 bits (longer runs of digits in strings
# or fractions match too; they only cost the msgspec parse).
_LONG_INT = re.compile(rb"[0-9]{19}").search
_LONG_INT_STR = re.compile(r"[0-9]{19}").search
_plain_decode = msgspec.json.Decoder().decode


def loads(data: bytes | str) -> Any:
    """Fast decode; JSON numbers with a fraction or exponent become ``float``, integers stay
    exact at any size."""
    check_depth(data, _max_depth)
    if (_LONG_INT(data) if isinstance(data, bytes) else _LONG_INT_STR(data)) is None:
        return orjson.loads(data)
    try:
        return _plain_decode(data)
    except msgspec.DecodeError:
        # What msgspec refuses (NaN, numbers out of a double's range) gets orjson's answer.
        return orjson.loads(data)


_exact_decode = msgspec.json.Decoder(float_hook=Decimal).decode


def loads_exact(data: bytes | str) -> Any:
    """Decode keeping every non-integer number as ``Decimal`` with its exact digits and scale.

    msgspec parses in C and hands each number's text to ``Decimal`` (2-3x the stdlib's speed on
    rows with decimals). What it refuses — malformed JSON, but also the stdlib's extensions
    (``NaN``, ``Infinity``, lone surrogates) — goes to the stdlib decoder, so results and
    errors (:data:`JSONDecodeError` with line and column) are the stdlib's.
    """
    check_depth(data, _max_depth)
    return parse_exact(data)


def parse_exact(data: bytes | str) -> Any:
    """:func:`loads_exact` without the depth check: for callers that made it themselves."""
    try:
        return _exact_decode(data)
    except msgspec.DecodeError:
        return json.loads(data, parse_float=Decimal)


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        # A raw fragment keeps the digits and the scale (22.50 stays 22.50), never via float.
        if not obj.is_finite():
            raise TypeError(f"cannot encode non-finite decimal {obj} as JSON")
        return orjson.Fragment(format(obj, "f").encode())
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=repr)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


_INT64 = (-(2**63), 2**64 - 1)


def wide_ints(obj: Any) -> Any:
    """``obj`` with every integer orjson cannot write (beyond 64 bits) as a raw JSON number."""
    if type(obj) is int:
        lo, hi = _INT64
        return obj if lo <= obj <= hi else orjson.Fragment(str(obj).encode())
    if isinstance(obj, dict):
        return {k: wide_ints(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [wide_ints(v) for v in obj]
    return obj


def dumps(obj: Any) -> bytes:
    """Encode to compact JSON bytes; ``Decimal`` is written as an exact JSON number, and so is an
    integer of any size."""
    try:
        return orjson.dumps(obj, default=_default)
    except orjson.JSONEncodeError as exc:
        if "64-bit" not in str(exc):
            raise
        # Rare (a stored integer beyond 64 bits): only then is the value walked.
        return orjson.dumps(wide_ints(obj), default=_default)
