"""JSON codec. orjson for speed; an exact variant where numbers must keep their decimal digits."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import msgspec
import orjson

#: Raised by both decoders on malformed input (``orjson.JSONDecodeError`` subclasses it).
JSONDecodeError = json.JSONDecodeError


def loads(data: bytes | str) -> Any:
    """Fast decode; JSON numbers with a fraction or exponent become ``float``."""
    return orjson.loads(data)


_exact_decode = msgspec.json.Decoder(float_hook=Decimal).decode


def loads_exact(data: bytes | str) -> Any:
    """Decode keeping every non-integer number as ``Decimal`` with its exact digits and scale.

    msgspec parses in C and hands each number's text to ``Decimal`` (2-3x the stdlib's speed on
    rows with decimals). What it refuses — malformed JSON, but also the stdlib's extensions
    (``NaN``, ``Infinity``, lone surrogates) — goes to the stdlib decoder, so results and
    errors (:data:`JSONDecodeError` with line and column) are the stdlib's.
    """
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


def dumps(obj: Any) -> bytes:
    """Encode to compact JSON bytes; ``Decimal`` is written as an exact JSON number."""
    return orjson.dumps(obj, default=_default)
