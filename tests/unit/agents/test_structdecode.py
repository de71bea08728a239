"""The typed struct decoder (:mod:`agents.structdecode`) against the stream's dict decoder: for
any record, the same value in every column (type and digits) or the same error, reason included.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agents.codec import DecodeError, make_decoder
from agents.structdecode import struct_decoder, struct_decoding
from sql.errors import SqlRuntimeError
from sql.types import BIGINT, BOOLEAN, DOUBLE, STRING, SqlType

COLUMNS = {
    "a": BIGINT,
    "s": STRING,
    "d": SqlType("DECIMAL", 6, 2),
    "b": BOOLEAN,
    "w": SqlType("DECIMAL", 30, 0),
}


def outcome(decode: Any, raw: bytes, struct: bool) -> Any:
    try:
        value = decode(raw)
    except (DecodeError, SqlRuntimeError) as exc:
        return ("error", type(exc).__name__, str(exc))
    get = (lambda n: getattr(value, f"f{list(COLUMNS).index(n)}")) if struct else value.get
    return [(n, type(get(n)).__name__, repr(get(n))) for n in COLUMNS]


number = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(["1.005", "-0.0", "1e400", "1E+2", "0.125", "123456.5", "99999.995", "-0"]),
    st.decimals(allow_nan=False, allow_infinity=False, places=4).map(str),
)
value = st.one_of(
    st.none(),
    st.booleans().map(lambda b: "true" if b else "false"),
    number,
    st.sampled_from(['"abc"', '"2"', '" 1.50 "', '"NaN"', '"1_0"', '"-Infinity"', "[1]", "{}"]),
)


@st.composite
def record(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(
            st.sampled_from(
                [
                    b"[1]",
                    b'"x"',
                    b"not json",
                    b"{",
                    b"",
                    b"null",
                    # Undeclared fields the dict decoder refuses: never skipped unchecked.
                    b'{"a": 1, "other": "\xff\xfe"}',
                    b'{"a": 1, "other": 01}',
                    b'{"a": 1, "other": "\\q"}',
                    b'{"a": 1, "other": [1,]}',
                    b'{"s": "\xff"}',
                ]
            )
        )
    names = draw(st.lists(st.sampled_from([*COLUMNS, "other"]), max_size=7))
    parts = [f'"{n}": {draw(value)}' for n in names]
    if kind == 1:  # nested deeper than the decoders' limit, in a field no column reads
        parts.append('"deep": ' + "[" * 300 + "]" * 300)
    return ("{" + ", ".join(parts) + "}").encode()


@settings(max_examples=300, deadline=None)
@given(raw=record())
def test_struct_decoder_reads_what_the_dict_decoder_reads(raw: bytes) -> None:
    slow = make_decoder(COLUMNS)
    decoding = struct_decoding(COLUMNS, slow)
    assert decoding is not None
    fast = struct_decoder(decoding)
    assert outcome(fast, raw, True) == outcome(slow, raw, False), raw


def test_columns_msgspec_does_not_read_as_the_dict_decoder_keep_the_dict_decoder() -> None:
    slow = make_decoder({"a": BIGINT, "x": DOUBLE})
    assert struct_decoding({"a": BIGINT, "x": DOUBLE}, slow) is None
    assert struct_decoding({"d": SqlType("DECIMAL")}, slow) is None  # no scale
    assert struct_decoding(None, slow) is None
