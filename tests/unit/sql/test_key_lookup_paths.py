"""The fused per-record paths of key lookups answer exactly as the generic ones.

A join or an EXISTS / scalar subquery on ``key = value`` runs as one closure (no row iterator, no
result list), and a query without WHERE after its joins builds its output dict in one generated
function. Each is checked here against the same query forced onto a full scan (``k + 0 = ...``
hides the key from the planner), over probes that are NULL, missing, or equal to a key by value
with another Python type; and for probes no key can equal (a JSON object, a boolean).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from sql import Catalog, compile_query
from sql.errors import CastError
from tables.memory import MemoryTable

TABLE = (
    "CREATE TABLE t (k BIGINT, grp VARCHAR, v DECIMAL(6,2), PRIMARY KEY (k)) WITH (topic='t');\n"
)
ROWS: list[dict[str, Any]] = [
    {"k": 1, "grp": "a", "v": Decimal("2.50")},
    {"k": 2, "grp": None, "v": None},
    {"k": 3, "grp": "b", "v": Decimal("0.10")},
]
# Probes comparable with a BIGINT key: the scan decides by SQL equality, the lookup by key text.
PROBES: list[Any] = [1, 2, 3, 99, None, 3.0, Decimal("1.00"), -0]


def table() -> MemoryTable:
    t = MemoryTable("t", key_field="k")
    for r in ROWS:
        t.put_row(r)
    return t


def catalog(t: MemoryTable) -> Catalog:
    cat = Catalog.of({"t": t})
    cat.add_stream("s")  # open: probes keep their Python type (no declared column converts them)
    return cat


def run(sql: str, records: list[dict[str, Any]]) -> tuple[str, list[list[dict[str, Any]]]]:
    q = compile_query(TABLE + sql, catalog(table()))
    try:
        return q.explain(), [q.process(r) for r in records]
    finally:
        q.close()


@pytest.mark.parametrize(
    ("by_key", "by_scan"),
    [
        (
            "SELECT s.x, EXISTS (SELECT 1 FROM t WHERE k = s.x) AS e,"
            " EXISTS (SELECT 1 FROM t WHERE k = s.x AND grp = 'a') AS ea,"
            " EXISTS (SELECT * FROM t WHERE k = s.x) AS es FROM s",
            "SELECT s.x, EXISTS (SELECT 1 FROM t WHERE k + 0 = s.x) AS e,"
            " EXISTS (SELECT 1 FROM t WHERE k + 0 = s.x AND grp = 'a') AS ea,"
            " EXISTS (SELECT * FROM t WHERE k + 0 = s.x) AS es FROM s",
        ),
        (
            "SELECT (SELECT v FROM t WHERE k = s.x) AS v,"
            " (SELECT _key FROM t WHERE k = s.x AND v > 1) AS key, s.x FROM s",
            "SELECT (SELECT v FROM t WHERE k + 0 = s.x) AS v,"
            " (SELECT _key FROM t WHERE k + 0 = s.x AND v > 1) AS key, s.x FROM s",
        ),
        (
            "SELECT s.x, t.grp, t._key AS key FROM s JOIN t ON t.k = s.x",
            "SELECT s.x, t.grp, t._key AS key FROM s JOIN t ON t.k + 0 = s.x",
        ),
        (
            "SELECT s.x, t.v FROM s LEFT JOIN t ON t.k = s.x AND t.grp IS NOT NULL",
            "SELECT s.x, t.v FROM s LEFT JOIN t ON t.k + 0 = s.x AND t.grp IS NOT NULL",
        ),
        (
            # three stream-only WHERE terms run before the join (one fused filter stage)
            "SELECT s.x, t.grp FROM s JOIN t ON t.k = s.x"
            " WHERE s.x IS NOT NULL AND s.x <> 2 AND EXISTS (SELECT 1 FROM t WHERE k = s.x)",
            "SELECT s.x, t.grp FROM s JOIN t ON t.k + 0 = s.x"
            " WHERE s.x IS NOT NULL AND s.x <> 2 AND EXISTS (SELECT 1 FROM t WHERE k + 0 = s.x)",
        ),
    ],
)
def test_key_lookup_answers_as_a_scan(by_key: str, by_scan: str) -> None:
    records = [{"x": p} for p in PROBES]
    plan_key, ours = run(by_key, records)
    plan_scan, theirs = run(by_scan, records)
    assert "key lookup" in plan_key
    assert "FULL SCAN" not in plan_key
    assert "FULL SCAN" in plan_scan
    assert "key lookup" not in plan_scan
    assert ours == theirs
    assert any(ours)
    assert any(not rows or None in rows[0].values() for rows in ours)


def test_probes_no_key_can_equal_match_nothing() -> None:
    # A JSON object is unhashable; a boolean is not a number (TRUE is not key 1).
    sql = (
        "SELECT EXISTS (SELECT 1 FROM t WHERE k = s.x) AS e,"
        " (SELECT grp FROM t WHERE k = s.x) AS g, t.v FROM s LEFT JOIN t ON t.k = s.x"
    )
    _, out = run(sql, [{"x": {"a": 1}}, {"x": [1]}, {"x": True}])
    assert out == [[{"e": False, "g": None, "v": None}]] * 3


def test_exists_still_evaluates_its_select_list() -> None:
    # EXISTS (SELECT <expr> ...) on a key: a row whose output fails is the record's error, as on
    # the generic path (the stored value 'x' is no DECIMAL).
    t = table()
    t.put_row({"k": 5, "grp": "c", "v": "x"})
    q = compile_query(
        TABLE + "SELECT EXISTS (SELECT v FROM t WHERE k = s.x) AS e FROM s",
        catalog(t),
    )
    assert q.process({"x": 1}) == [{"e": True}]
    with pytest.raises(CastError):
        q.process({"x": 5})
    q.close()


def test_generated_projection_keeps_any_output_name() -> None:
    sql = (
        'SELECT s.x AS "it\'s", s.x + 1 AS "a""b", s.x AS "\\n", t.grp AS "{}"'
        " FROM s JOIN t ON t.k = s.x"
    )
    _, out = run(sql, [{"x": 1}, {"x": 99}])
    assert out == [[{"it's": 1, 'a"b': 2, "\\n": 1, "{}": "a"}], []]


def test_generated_projection_reads_declared_columns_as_their_closures_do() -> None:
    # Plain column outputs are inlined into the generated projection: a value of another type
    # still goes through the column's converter (and fails the record as a CastError).
    stream = "CREATE STREAM s (x BIGINT, name VARCHAR, f DOUBLE, ok BOOLEAN, d DECIMAL(6,2));\n"
    q = compile_query(
        TABLE + stream + "SELECT s.x, s.name, s.f, s.ok, s.d, s.x + 0 AS x0 FROM s",
        Catalog.of({"t": table()}),
    )
    got = q.process({"x": "7", "name": 5, "f": 1, "ok": True, "d": 0.1})
    assert got == [{"x": 7, "name": "5", "f": 1.0, "ok": True, "d": Decimal("0.10"), "x0": 7}]
    assert [type(v) for v in got[0].values()] == [int, str, float, bool, Decimal, int]
    assert q.process({}) == [dict.fromkeys(("x", "name", "f", "ok", "d", "x0"))]
    with pytest.raises(CastError):
        q.process({"x": "seven"})
    q.close()
