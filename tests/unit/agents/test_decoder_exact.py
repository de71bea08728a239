"""The generated decoders against the exact stdlib path: same values, same failures, whatever
the digits — huge integers, long fractions, exponents — and no record ever stops the decoder."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.codec import DecodeError, make_decoder
from sql.errors import CastError
from sql.types import BIGINT, DOUBLE, STRING, SqlType, converter

NARROW = SqlType("DECIMAL", 10, 2)
WIDE = SqlType("DECIMAL", 30, 6)
COLUMN_SETS: list[dict[str, SqlType] | None] = [
    None,  # an open stream: every value as decoded
    {"a": BIGINT, "s": STRING, "x": DOUBLE},  # no DECIMAL: orjson only, floats re-decoded
    {"a": BIGINT, "s": STRING, "d": NARROW},  # DECIMAL(p <= 15): floats for d
    {"a": BIGINT, "s": STRING, "d": WIDE, "x": DOUBLE},  # a wide DECIMAL: exact for fractions
]


def reference(raw: bytes, columns: Mapping[str, SqlType] | None) -> Any:
    """The exact path by definition: the stdlib with Decimal floats, then sql's conversions."""
    value = json.loads(raw, parse_float=Decimal)
    assert isinstance(value, dict)
    for name, t in (columns or {}).items():
        conv = converter(t)
        if conv is not None and value.get(name) is not None:
            value[name] = conv(value[name])
    return value


def outcome(decode: Any, raw: bytes, columns: Mapping[str, SqlType] | None) -> Any:
    """What a reader sees: each read column's type and exact text, or that the record fails."""
    try:
        value = decode(raw, columns) if decode is reference else decode(raw)
    except (DecodeError, CastError, ValueError, ArithmeticError):
        return "error"
    names = list(columns) if columns is not None else sorted(value)
    return [(n, type(value.get(n)).__name__, repr(value.get(n))) for n in names]


digits = st.text("0123456789", min_size=1, max_size=40)


@st.composite
def numbers(draw: st.DrawFn) -> str:
    """JSON number texts: integers of any size, long fractions, exponents of any size."""
    whole = draw(digits).lstrip("0") or "0"
    text = draw(st.sampled_from(["", "-"])) + whole
    if draw(st.booleans()):
        text += "." + draw(digits)
    if draw(st.booleans()):
        text += draw(st.sampled_from("eE")) + draw(st.sampled_from(["", "+", "-"]))
        text += str(draw(st.integers(0, 500)))
    return text


@settings(max_examples=600, deadline=None)
@given(st.lists(numbers(), min_size=5, max_size=5), st.sampled_from(range(len(COLUMN_SETS))))
def test_decoders_agree_with_the_exact_stdlib_path(nums: list[str], which: int) -> None:
    columns = COLUMN_SETS[which]
    raw = (
        "{" + ", ".join(f'"{k}": {n}' for k, n in zip("asdxu", nums, strict=True)) + "}"
    ).encode()
    decode = make_decoder(columns)
    assert outcome(decode, raw, columns) == outcome(reference, raw, columns), raw


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # The values the issue found changed: now kept, or refused record by record.
        (b'{"a": 18446744073709551617}', "error"),
        (b'{"a": 9223372036854775807}', {"a": 9223372036854775807}),
        (b'{"s": 123456789012345678901234567890}', {"s": "123456789012345678901234567890"}),
        (b'{"s": 1.2345678901234567890123e29}', {"s": "123456789012345678901230000000"}),
        (b'{"s": 1.50}', {"s": "1.50"}),
        (b'{"d": 12345678901234567890.12}', "error"),  # does not fit DECIMAL(10,2)
        (b'{"d": 12345678.12}', {"d": Decimal("12345678.12")}),
        (b'{"d": 0.124999999999999999}', {"d": Decimal("0.12")}),  # not 0.13 via a float
        (b'{"d": NaN}', "error"),
        (b'{"d": Infinity}', "error"),
    ],
)
def test_numbers_keep_their_digits_or_fail_the_record(raw: bytes, expected: Any) -> None:
    decode = make_decoder({"a": BIGINT, "s": STRING, "d": NARROW})
    value: Any
    try:
        value = decode(raw)
    except (DecodeError, CastError):
        value = "error"
    if isinstance(expected, dict):
        assert isinstance(value, dict)
        assert {k: value[k] for k in expected} == expected
        assert [str(value[k]) for k in expected] == [str(v) for v in expected.values()]
    else:
        assert value == expected


@pytest.mark.parametrize("columns", COLUMN_SETS)
def test_deep_nesting_is_a_decode_error_with_a_reason(
    columns: dict[str, SqlType] | None,
) -> None:
    decode = make_decoder(columns)
    with pytest.raises(DecodeError, match="nested deeper than 256 levels"):
        decode(b'{"a": 1, "n": ' + b"[" * 10_000 + b"]" * 10_000 + b"}")
    with pytest.raises(DecodeError, match="not valid JSON"):
        decode(b"[" * 100_000)
