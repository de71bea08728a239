from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import codec


def test_decimal_round_trip_keeps_digits_and_scale() -> None:
    value = codec.loads_exact(b'{"px": 22.50, "n": 3, "big": 12345678901234567890.123456789}')
    assert value == {
        "px": Decimal("22.50"),
        "n": 3,
        "big": Decimal("12345678901234567890.123456789"),
    }
    assert codec.dumps(value) == b'{"px":22.50,"n":3,"big":12345678901234567890.123456789}'


def test_non_finite_decimal_is_refused() -> None:
    with pytest.raises(TypeError):
        codec.dumps(Decimal("NaN"))


def test_fast_decoder_raises_the_shared_error() -> None:
    with pytest.raises(codec.JSONDecodeError):
        codec.loads(b"{x")
    with pytest.raises(codec.JSONDecodeError):
        codec.loads_exact(b"{x")


_JSON_TEXT = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30).map(str)
    | st.decimals(allow_nan=False, allow_infinity=False).map(str)
    | st.floats(allow_nan=False, allow_infinity=False).map(repr)
    | st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-0.0", "1E+2", "0.10"])
    | st.text().map(lambda t: json.dumps(t, ensure_ascii=False))
    | st.text().map(json.dumps),
    lambda inner: (
        st.lists(inner, max_size=4).map(lambda xs: "[" + ",".join(map(_txt, xs)) + "]")
        | st.dictionaries(st.text(max_size=5), inner, max_size=4).map(
            lambda d: "{" + ",".join(f"{json.dumps(k)}:{_txt(v)}" for k, v in d.items()) + "}"
        )
    ),
    max_leaves=12,
)


def _txt(v: object) -> str:
    return "null" if v is None else ("true" if v is True else "false" if v is False else str(v))


@settings(max_examples=500, deadline=None)
@given(_JSON_TEXT, st.sampled_from(["", " ", "\n"]))
def test_exact_decoder_is_the_stdlibs_exact_decoder(text: object, pad: str) -> None:
    # loads_exact (msgspec, falling back to the stdlib) gives exactly what the stdlib gives:
    # same values, same Decimal digits, same errors — including NaN/Infinity and bad input.
    raw = (pad + _txt(text) + pad).encode("utf-8", "surrogatepass")

    def outcome(fn: Callable[[bytes], object]) -> object:
        try:
            return repr(fn(raw))
        except (ValueError, UnicodeDecodeError) as exc:
            return type(exc).__name__

    assert outcome(codec.loads_exact) == outcome(lambda r: json.loads(r, parse_float=Decimal))
    assert outcome(lambda r: codec.loads_exact(r.decode("utf-8", "replace"))) == outcome(
        lambda r: json.loads(r.decode("utf-8", "replace"), parse_float=Decimal)
    )


def test_exact_decoder_errors_and_extensions_are_the_stdlibs() -> None:
    with pytest.raises(codec.JSONDecodeError, match="line 1 column 8"):
        codec.loads_exact(b'{"a": 1')
    nan = codec.loads_exact(b'{"a": NaN, "b": 1.50}')
    assert nan["a"] != nan["a"]  # NaN, as the stdlib reads it
    assert str(nan["b"]) == "1.50"
    assert codec.loads_exact('"\\ud800"') == "\ud800"


@pytest.mark.parametrize("decode", [codec.loads, codec.loads_exact])
def test_a_document_deeper_than_the_limit_is_refused_before_parsing(
    decode: Callable[[bytes], Any],
) -> None:
    for deep in (b"[" * 10_000 + b"]" * 10_000, b"[" * 100_000, b'{"a":' * 300 + b"1" + b"}" * 300):
        with pytest.raises(codec.JSONDepthError, match="nested deeper than 256 levels"):
            decode(deep)
    # Exactly at the limit, or brackets inside strings, or many side by side: all fine.
    assert decode(b"[" * 256 + b"]" * 256) is not None
    assert decode(b'["' + b"[" * 1000 + b'"]') == ["[" * 1000]
    assert decode(b"[" + b"[1]," * 5000 + b"[2]]")[-1] == [2]
    assert decode(b'["\\"[[["]') == ['"[[[']


def test_the_depth_limit_is_a_setting() -> None:
    try:
        codec.set_max_depth(3)
        assert codec.loads(b"[[[1]]]") == [[[1]]]
        with pytest.raises(codec.JSONDepthError, match="deeper than 3 levels"):
            codec.loads_exact(b"[[[[1]]]]")
    finally:
        codec.set_max_depth(codec.DEFAULT_MAX_DEPTH)
    with pytest.raises(ValueError, match="must be >= 1"):
        codec.set_max_depth(0)


def test_integers_beyond_64_bits_decode_and_encode_exactly() -> None:
    text = b'{"a":18446744073709551617,"b":-123456789012345678901234567890,"c":[1.5]}'
    for decode in (codec.loads, codec.loads_exact):
        value = decode(text)
        assert value["a"] == 18446744073709551617
        assert value["b"] == -123456789012345678901234567890
    assert codec.loads(text.decode())["a"] == 18446744073709551617
    assert codec.dumps(codec.loads(text)) == text
    assert codec.dumps({"k": [2**100, {"n": -(2**64)}]}) == (
        b'{"k":[1267650600228229401496703205376,{"n":-18446744073709551616}]}'
    )
