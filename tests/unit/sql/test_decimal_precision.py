"""DECIMAL(p, s) precision is enforced: a value with more than ``p`` digits once rounded to scale
``s`` is the record's NumericOverflowError (PostgreSQL's "numeric field overflow"), in CAST, in
a declared column's read and when a row is assigned to the sink's declared columns. The query
carries on with the next record; the offline runner reports the record and exits 1.
"""

from __future__ import annotations

import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from sql import CastError, Catalog, NumericOverflowError, SqlType, compile_query
from sql.runner import main

VALUES = ["999.994", "999.995", "-999.995", "1000", "0.001", "12345", "-0.004", "99.5"]


@pytest.mark.parametrize("text", VALUES)
def test_cast_overflow_matches_duckdb(text: str) -> None:
    q = compile_query(
        "CREATE STREAM s (v DECIMAL(12,4)) WITH (topic='s');\n"
        "SELECT CAST(v AS DECIMAL(5,2)) AS c, TRY_CAST(v AS DECIMAL(5,2)) AS t FROM s",
        Catalog(),
    )
    con = duckdb.connect()
    try:
        (want,) = con.execute(f"SELECT CAST({text}::DECIMAL(12,4) AS DECIMAL(5,2))").fetchone()  # type: ignore[misc]
    except duckdb.ConversionException:
        with pytest.raises(NumericOverflowError) as info:
            q.process({"v": text})
        assert "numeric field overflow" in str(info.value)
        assert (info.value.fields["precision"], info.value.fields["scale"]) == (5, 2)
        assert isinstance(info.value, CastError)
        return
    assert q.process({"v": text}) == [{"c": want, "t": want}]


def test_try_cast_overflow_is_null() -> None:
    q = compile_query(
        "CREATE STREAM s (v BIGINT) WITH (topic='s');\n"
        "SELECT TRY_CAST(v AS DECIMAL(3,1)) AS t FROM s",
        Catalog(),
    )
    assert q.process({"v": 99}) == [{"t": Decimal("99.0")}]
    assert q.process({"v": 100}) == [{"t": None}]


def test_a_declared_column_holding_too_many_digits_fails_its_record() -> None:
    q = compile_query(
        "CREATE STREAM s (v DECIMAL(4,2), n BIGINT) WITH (topic='s');\nSELECT n, v FROM s",
        Catalog(),
    )
    assert q.process({"v": 12.345, "n": 1}) == [{"n": 1, "v": Decimal("12.35")}]
    for bad in (Decimal("100.00"), 99.999, "123", 100):
        with pytest.raises(NumericOverflowError):
            q.process({"v": bad, "n": 2})
    assert q.process({"v": "-99.99", "n": 3}) == [{"n": 3, "v": Decimal("-99.99")}]


SINK_SQL = (
    "CREATE STREAM orders (id BIGINT, price DECIMAL(10,2), qty BIGINT) WITH (topic='orders');\n"
    "CREATE STREAM priced (id BIGINT, total DECIMAL(6,2), PRIMARY KEY (id))"
    " WITH (topic='priced') AS\n"
    "SELECT id, price * qty / 3 AS total FROM orders"
)


def test_sink_declared_decimal_rounds_and_refuses_overflow() -> None:
    q = compile_query(SINK_SQL, Catalog())
    assert q.output_types[1].precision == 6
    # 10.00 * 1 / 3 = 3.333333333333333 (16 digits) → assigned to DECIMAL(6,2): 3.33
    assert q.process({"id": 1, "price": "10.00", "qty": 1}) == [{"id": 1, "total": Decimal("3.33")}]
    with pytest.raises(NumericOverflowError) as info:
        q.process({"id": 2, "price": "9999.99", "qty": 30})  # 99999.90 has 7 digits
    assert info.value.fields["value"] == "99999.90"
    assert info.value.fields["record"] == {"id": 2, "price": "9999.99", "qty": 30}
    # the query carries on; NULL stays NULL
    assert q.process({"id": 3, "price": None, "qty": 1}) == [{"id": 3, "total": None}]
    con = duckdb.connect()
    (want,) = con.execute("SELECT CAST(10.00::DECIMAL(10,2) * 1 / 3 AS DECIMAL(6,2))").fetchone()  # type: ignore[misc]
    assert want == Decimal("3.33")


def test_the_runner_reports_an_overflowing_record_and_goes_on(tmp_path: Path) -> None:
    query = tmp_path / "q.sql"
    query.write_text(SINK_SQL + ";\n", encoding="utf-8")
    stream = tmp_path / "orders.jsonl"
    rows: list[dict[str, Any]] = [
        {"id": 1, "price": 2.5, "qty": 3},
        {"id": 2, "price": 9999.99, "qty": 300},
        {"id": 3, "price": 1, "qty": 3},
    ]

    stream.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    code = main(["run", str(query), "--stream", f"orders={stream}"], out=out, err=err)
    assert code == 1
    assert out.getvalue().splitlines() == ['{"id":1,"total":2.50}', '{"id":3,"total":1.00}']
    assert "record 2: numeric field overflow" in err.getvalue()


def test_an_overflowing_record_goes_to_the_dead_letter_topic_and_the_batch_goes_on() -> None:
    """Through the worker's batch processor (decoder → compiled query → encoder): the record
    whose total overflows the sink's DECIMAL(6,2) is dead-lettered with the reason, the others
    are written."""
    from agents.codec import make_decoder
    from agents.process import BatchProcessor
    from core import codec
    from tables.deadletter import H_REASON
    from tests.support.records import Collect, Rec

    q = compile_query(SINK_SQL, Catalog())
    proc = BatchProcessor(
        q,
        make_decoder({"id": SqlType("BIGINT"), "price": SqlType("DECIMAL", 10, 2)}),
        name="priced",
        sink_topic="priced",
        key_columns=q.key_columns,
        dead_letter_topic="dlq",
    )
    out = Collect()
    counts = proc.run(
        [
            Rec(0, 1, b"k", b'{"id": 1, "price": 10.00, "qty": 1}'),
            Rec(0, 2, b"k", b'{"id": 2, "price": 9999.99, "qty": 30}'),
            Rec(0, 3, b"k", b'{"id": 3, "price": 2.50, "qty": 3}'),
        ],
        out,
    )
    assert (counts.records_in, counts.records_out, counts.dead_letters) == (3, 2, 1)
    rows = [codec.loads_exact(v) for t, _, v, _ in out.records if t == "priced" and v]
    assert rows == [{"id": 1, "total": Decimal("3.33")}, {"id": 3, "total": Decimal("2.50")}]
    (dead,) = [h for t, _, _, h in out.records if t == "dlq"]
    assert dead[H_REASON].startswith(b"NumericOverflowError: numeric field overflow")
