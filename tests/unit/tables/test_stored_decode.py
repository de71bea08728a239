"""Rows read back from the store decode to exactly what the table's decoder gave on loading."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import codec
from tables.reference import stored_decoder

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
EDGES = [
    b'{"a":1,"a":2}',
    b'"\\ud83d\\ude00"',
    b"1e-400",
    b"-0",
    b"-0.0",
    b"1234567890123456789012",
    b"100000000000000000000000.5",
    b'{"px":22.50,"q":1E2}',
    b"  [ ]  ",
]


def same(a: Any, b: Any) -> bool:
    return repr(a) == repr(b) and type(a) is type(b)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_stored_rows_decode_as_on_loading(value: Any) -> None:
    raw = codec.dumps(value)
    for decode in (codec.loads, codec.loads_exact):
        assert same(stored_decoder(decode)(raw), decode(raw))


@pytest.mark.parametrize("raw", EDGES)
@pytest.mark.parametrize("decode", [codec.loads, codec.loads_exact])
def test_edge_cases_decode_as_on_loading(raw: bytes, decode: Any) -> None:
    assert same(stored_decoder(decode)(raw), decode(raw))
