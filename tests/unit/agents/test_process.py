"""The batch processor and its codec: records through a compiled query into output records and
dead letters, with exact decimals, keys and original bytes."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.codec import DecodeError, encode_row, make_decoder, make_encoder, make_key
from agents.process import BatchProcessor
from core import codec
from sql import compile_query
from sql.parse import parse_script
from sql.types import SqlType
from tables.deadletter import H_REASON, H_SOURCE
from tables.memory import MemoryTable
from tests.support.records import Collect, Rec

DEC = SqlType("DECIMAL")
DEC2 = SqlType("DECIMAL", 10, 2)


def decoded(value: bytes | None) -> Any:
    """An output value (never a tombstone in these tests), decoded with exact decimals."""
    assert value is not None
    return codec.loads_exact(value)


def test_decoder_keeps_decimal_digits_and_casts_declared_columns() -> None:
    exact = make_decoder({"amount": DEC, "qty": SqlType("BIGINT")})
    value = exact(b'{"amount": 22.50, "qty": "3", "note": "v1.2"}')
    assert value == {"amount": Decimal("22.50"), "qty": 3, "note": "v1.2"}
    assert str(value["amount"]) == "22.50"
    # DECIMAL(10,2) reads exactly from the fast decoder's float.
    scaled = make_decoder({"amount": DEC2})(b'{"amount": 0.1}')
    assert str(scaled["amount"]) == "0.10"
    # Wider than a double's 15 exact digits: read from the text, not through float.
    wide = make_decoder({"amount": SqlType("DECIMAL", 38, 10)})
    assert str(wide(b'{"amount": 1234567890123456.0000000001}')["amount"]) == (
        "1234567890123456.0000000001"
    )
    # Open streams keep exact digits too.
    assert str(make_decoder(None)(b'{"x": 1e2, "y": 0.30}')["y"]) == "0.30"
    assert make_decoder(None)(b'{"x": 7}') == {"x": 7}


def test_decimal_column_decodes_repeated_values_as_a_fresh_decoder_does() -> None:
    # A DECIMAL(p, s) decoder remembers the Decimal of each float it read: repeats, zeros of
    # either sign and integers must come out exactly as from a decoder that never saw them.
    raws = [b"0.1", b"22.5", b"0.1", b"-0.0", b"0.0", b"-0.0", b"7", b"22.50", b"1e2", b"0.1"]
    shared = make_decoder({"amount": DEC2})
    for raw in raws:
        body = b'{"amount": ' + raw + b"}"
        ours, fresh = shared(body)["amount"], make_decoder({"amount": DEC2})(body)["amount"]
        assert (str(ours), type(ours)) == (str(fresh), Decimal), raw
    assert [str(shared(b'{"amount": ' + r + b"}")["amount"]) for r in raws[3:6]] == [
        "-0.00",
        "0.00",
        "-0.00",
    ]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "a JSON list, not an object"),
        (b'"text"', "a JSON str, not an object"),
        (None, "tombstone"),
    ],
)
def test_decoder_reasons(raw: bytes | None, reason: str) -> None:
    with pytest.raises(DecodeError) as err:
        make_decoder(None)(raw)
    assert reason in err.value.reason


def test_encode_and_keys() -> None:
    row = {"a": Decimal("1.50"), "d": dt.timedelta(seconds=90), "s": "x"}
    assert encode_row(row) == b'{"a":1.50,"d":90.0,"s":"x"}'
    assert encode_row([Decimal("1E+2"), Decimal("-0.000000010")]) == b"[100,-0.000000010]"
    with pytest.raises(TypeError):
        encode_row([Decimal("NaN")])
    one = make_key(["a"])
    assert one is not None
    assert one(row) == b"1.5"
    many = make_key(["s", "a"])
    assert many is not None
    assert many(row) == b'["x",1.50]'
    assert make_key([]) is None


def processor(
    sql: str, tables: dict[str, Any], key_columns: tuple[str, ...] = ()
) -> BatchProcessor:
    query = compile_query(sql, tables)
    return BatchProcessor(
        query,
        make_decoder({"amount": DEC}),
        name="q",
        sink_topic="out",
        key_columns=key_columns,
        dead_letter_topic="dlq",
    )


def test_batch_outputs_dead_letters_and_last_offsets() -> None:
    users = MemoryTable("users", key_field="id")
    users.put(1, {"id": 1, "name": "ann", "tier": "gold"})
    users.put(2, {"id": 2, "name": "bob", "tier": "basic"})
    proc = processor(
        "CREATE STREAM orders (id BIGINT, user_id BIGINT, amount DECIMAL, qty BIGINT);"
        "SELECT o.id, u.name, o.amount * o.qty AS total FROM orders o "
        "JOIN users u ON u.id = o.user_id "
        "WHERE o.user_id IN (SELECT id FROM users WHERE tier = 'gold') AND 10 / o.qty > 0",
        {"users": users},
    )
    records = [
        Rec(0, 5, b"k1", b'{"id": 1, "user_id": 1, "amount": 2.50, "qty": 2}'),
        Rec(0, 6, b"k2", b'{"id": 2, "user_id": 2, "amount": 1.00, "qty": 1}'),  # basic
        Rec(1, 9, b"k3", b"{oops"),
        Rec(1, 10, b"k4", b'{"id": 4, "user_id": 1, "amount": 1.00, "qty": 0}'),  # 10 / 0
        Rec(1, 11, None, b'{"id": 5, "user_id": 1, "amount": 0.10, "qty": 3}'),
        Rec(1, 12, b"k6", None),  # a tombstone: no row of a stream to delete, skipped
    ]
    out = Collect()
    counts = proc.run(records, out)
    assert (counts.records_in, counts.records_out, counts.dead_letters) == (6, 2, 2)
    assert counts.tombstones == 1
    assert {p: r.offset for p, r in counts.last.items()} == {0: 6, 1: 12}
    results = [(t, k, decoded(v)) for t, k, v, _ in out.records if t == "out"]
    # Keyed by the source record's key; exact decimals in the values.
    assert results == [
        ("out", b"k1", {"id": 1, "name": "ann", "total": Decimal("5.00")}),
        ("out", None, {"id": 5, "name": "ann", "total": Decimal("0.30")}),
    ]
    dead = [(k, v, h) for t, k, v, h in out.records if t == "dlq"]
    assert [(k, v) for k, v, _ in dead] == [(b"k3", b"{oops"), (b"k4", records[3].value)]
    assert b"not valid JSON" in dead[0][2][H_REASON]
    assert dead[1][2][H_REASON].startswith(b"DivisionByZeroError")
    assert {h[H_SOURCE] for _, _, h in dead} == {b"query:q"}


def test_aggregate_outputs_are_keyed_by_the_group_key() -> None:
    proc = processor(
        "CREATE STREAM orders (user_id BIGINT, amount DECIMAL);"
        "SELECT user_id, COUNT(*) AS n, SUM(amount) AS total FROM orders GROUP BY user_id",
        {},
        key_columns=("user_id",),
    )
    out = Collect()
    values = [(7, "1.10"), (8, "2.00"), (7, "0.05")]
    recs = [
        Rec(0, i, b"src", f'{{"user_id": {u}, "amount": {a}}}'.encode())
        for i, (u, a) in enumerate(values)
    ]
    proc.run(recs, out)
    got = [(k, decoded(v)) for _, k, v, _ in out.records]
    expected = []
    totals: dict[int, tuple[int, Decimal]] = {}
    for u, a in values:
        n, t = totals.get(u, (0, Decimal(0)))
        totals[u] = (n + 1, t + Decimal(a))
        expected.append((str(u).encode(), {"user_id": u, "n": totals[u][0], "total": totals[u][1]}))
    assert got == expected


def test_typed_streams_read_the_decoders_values_as_converting_reads_do() -> None:
    # The agents compile with typed_streams (their decoder already converted every declared
    # column): each record must give what a query converting on every read gives, error or row.
    sql = (
        "CREATE STREAM s (id BIGINT, amount DECIMAL(10,2), rate DOUBLE, name VARCHAR, ok BOOLEAN,"
        " day DATE);"
        "SELECT id, amount * id AS total, rate + 1 AS r, name || '!' AS n, NOT ok AS nok,"
        " day, amount > 1.5 AS big FROM s WHERE id IN (1, 2, 3, 4, 5, 6, 7)"
    )
    columns = parse_script(sql).declarations["s"].columns
    assert columns is not None
    decode = make_decoder(columns)
    typed, plain = compile_query(sql, {}, typed_streams=True), compile_query(sql, {})
    raws = [
        b'{"id": 1, "amount": 2.5, "rate": 0.5, "name": "a", "ok": true, "day": "2026-11-26"}',
        b'{"id": "2", "amount": "3.125", "rate": 1, "name": 7, "ok": "false", "day": null}',
        b'{"id": 3, "amount": 1, "rate": "2.5", "name": "c", "ok": false}',
        b'{"id": 4.0, "amount": 12345678.123, "rate": null, "name": null, "ok": null}',
        b'{"id": 5, "amount": "x"}',
        b'{"id": 6, "amount": 1e2, "day": "not a date"}',
        b'{"id": 7, "amount": 0.1, "ok": 1}',
    ]

    def outcome(query: Any, raw: bytes) -> Any:
        try:
            return query.process(decode(raw))
        except Exception as exc:  # the same error class either way
            return type(exc).__name__

    results = [(outcome(typed, r), outcome(plain, r)) for r in raws]
    assert [t for t, _ in results] == [p for _, p in results]
    assert sum(isinstance(t, list) and len(t) == 1 for t, _ in results) >= 3


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.none(),
            st.integers(min_value=-(2**63), max_value=2**64 - 1),
            st.floats(allow_nan=True, allow_infinity=True),
            st.text(),
            st.booleans(),
            st.decimals(allow_nan=True, allow_infinity=True),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_fast_encoder_writes_what_encode_row_writes(values: list[Any]) -> None:
    row = {f"c{i}": v for i, v in enumerate(values)}
    # Each column of the SQL type its value has (as a query's output column would).
    kinds = {bool: "BOOLEAN", int: "BIGINT", float: "DOUBLE", str: "STRING", Decimal: "DECIMAL"}
    types = [SqlType(kinds.get(type(v), "NULL")) for v in values]
    fast = make_encoder(list(row), types)
    try:
        expected = encode_row(row)
    except TypeError:
        with pytest.raises(TypeError):
            fast(row)
        return
    got = fast(row)
    # The same JSON values, exactly (numbers may spell exponents differently: 1e300 / 1e+300,
    # a DECIMAL 1.0E+4 / 10000); decimals keep their digits after the point.
    ours, theirs = codec.loads_exact(got), codec.loads_exact(expected)
    assert ours == theirs
    for a, b in zip(ours.values(), theirs.values(), strict=True):
        if type(a) is Decimal and a.is_finite() and int(a.as_tuple().exponent) <= 0:
            assert str(a) == str(b)


def test_encoder_choice_follows_the_output_types() -> None:
    assert make_encoder(["a", "t"], [SqlType("BIGINT"), SqlType("TIMESTAMP")]) is encode_row
    assert make_encoder([], None) is encode_row
    fast = make_encoder(["a", "b"], [DEC2, SqlType("BIGINT")])
    assert fast is not encode_row
    assert fast({"a": Decimal("22.50"), "b": 1}) == b'{"a":22.50,"b":1}'
    with pytest.raises(TypeError):
        fast({"a": Decimal("NaN"), "b": 1})
    # Beyond 64 bits orjson refuses an integer (the record is a dead letter); msgspec writes it.
    assert fast({"b": 2**70}) == b'{"b":1180591620717411303424}'


def test_message_key_reads_as_text_when_the_query_reads_it() -> None:
    proc = processor("CREATE STREAM s (id BIGINT); SELECT _key AS k, id FROM s WHERE id > 0", {})
    out = Collect()
    recs = [Rec(0, 0, b"caf\xc3\xa9", b'{"id": 1}'), Rec(0, 1, b"\xff!", b'{"id": 2}')]
    recs.append(Rec(0, 2, None, b'{"id": 3}'))
    proc.run(recs, out)
    assert [decoded(v) for _, _, v, _ in out.records] == [
        {"k": "café", "id": 1},
        {"k": "\ufffd!", "id": 2},
        {"k": None, "id": 3},
    ]
    # The offline API takes text keys as before.
    assert compile_query("CREATE STREAM s (id BIGINT); SELECT _key AS k FROM s", {}).process(
        {"id": 1}, key="x"
    ) == [{"k": "x"}]


def test_typed_group_key_reads_the_decoders_values_as_converting_reads_do() -> None:
    # Stage 1 of a stateful query keys the decoder's records with the query's own typed_streams.
    sql = (
        "CREATE STREAM s (k VARCHAR, n BIGINT, amount DECIMAL(10,2));"
        "SELECT k, n % 3 AS m, amount * 2 AS a2, COUNT(*) AS c FROM s GROUP BY k, n % 3, amount * 2"
    )
    columns = parse_script(sql).declarations["s"].columns
    assert columns is not None
    decode = make_decoder(columns)
    typed = compile_query(sql, {}, typed_streams=True).partition_key()
    plain = compile_query(sql, {}).partition_key()
    raws = [b'{"k": "a", "n": 4, "amount": 2.5}', b'{"k": 7, "n": "5", "amount": "1.125"}']
    raws += [b'{"k": null, "n": 6.0, "amount": 3}', b'{"k": "b"}']
    keys = [typed(decode(r)) for r in raws]
    assert keys == [plain(decode(r)) for r in raws]
    assert [str(k[2]) for k in keys] == ["5.00", "2.26", "6.00", "None"]


class BrokenTable(MemoryTable):
    """A table whose reads fail with a bug (no SQL error): what a processor must survive."""

    def get(self, key: Any, default: Any = None) -> Any:
        raise RuntimeError(f"bug reading {key!r}")


def test_a_bug_on_one_record_dead_letters_it_naming_the_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    users = BrokenTable("users", key_field="id")
    proc = processor(
        "CREATE STREAM orders (id BIGINT, user_id BIGINT);"
        "SELECT o.id, u.name FROM orders o JOIN users u ON u.id = o.user_id",
        {"users": users},
    )
    out = Collect()
    with caplog.at_level(logging.ERROR, logger="agents.process"):
        counts = proc.run([Rec(2, 41, b"k", b'{"id": 1, "user_id": 7}')], out)
    assert (counts.records_in, counts.records_out, counts.dead_letters) == (1, 0, 1)
    [(topic, key, _, headers)] = out.records
    assert (topic, key) == ("dlq", b"k")
    assert headers[H_REASON] == b"internal error RuntimeError: bug reading 7"
    [logged] = caplog.records
    assert logged.getMessage() == "query q: orders[2]@41"
    assert logged.exc_info is not None  # with its traceback
