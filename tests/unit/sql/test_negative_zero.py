"""SQL has no negative zero: a DECIMAL product or quotient that is zero prints as ``0.00``, as
PostgreSQL and DuckDB print it, where Python's Decimal keeps the sign (``0 * -1.00 = -0.00``).
Both engines — the closures and the generated batch function — and DuckDB agree (hypothesis found
``st.x * st.y`` with x = 0, y = -1.00 giving ``-0.00`` in ours, ``0.00`` in DuckDB)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sql import compile_query, logic, parse_script
from tests.support.codegen import engine, run_collected
from tests.support.rocks import Record
from tests.unit.sql.support import DuckMirror, declarations, make_tables


def test_zero_products_and_quotients_have_no_sign() -> None:
    assert str(logic.mul(0, Decimal("-1.00"))) == "0.00"
    assert str(logic.mul(Decimal("-0.5"), Decimal("0.0"))) == "0.00"
    assert str(logic.div(0, Decimal("-1.0"))) == "0.0"
    assert str(logic.div(Decimal("-0.00"), Decimal("3"))) == "0.00"
    assert str(logic.mul(Decimal("-0.5"), 2)) == "-1.0"  # a non-zero product keeps its sign


def test_both_engines_and_duckdb_print_zero_without_sign() -> None:
    sql = declarations() + "SELECT st.x * st.y AS m, st.y * 0 AS z, st.x / st.y AS d FROM st"
    columns = parse_script(sql).declarations["st"].columns
    common: dict[str, Any] = dict(
        name="q", sink_topic="out", key_columns=(), dead_letter_topic="dlq"
    )
    value = b'{"x": 0, "y": -1.00, "z": "a"}'
    outs = []
    for fused in (False, True):
        q = compile_query(sql, dict(make_tables()), typed_streams=True)
        p = engine(q, columns, fused, **common)
        out = run_collected(p, [Record("st", 0, 0, 0, b"k", value)])
        outs.append([o[2] for o in out.out])
        q.close()
    assert outs[0] == outs[1] == [b'{"m":0.00,"z":0.00,"d":0.00}']
    mirror = DuckMirror()
    mirror.load(make_tables())
    # DuckDB's DECIMAL / DECIMAL is a DOUBLE: only the products are compared with it.
    theirs = mirror.run("SELECT st.x * st.y, st.y * 0 FROM st", {"x": 0, "y": Decimal("-1.00")})
    assert [tuple(str(v) for v in row) for row in theirs] == [("0.00", "0.00")]
