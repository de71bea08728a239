"""Issue-3 items the differential grammar does not reach, each checked against DuckDB.

Subqueries in HAVING and JOIN ON, temporal and INTERVAL columns, nested JSON read by path,
numeric comparison across BIGINT/DECIMAL/DOUBLE, index probes over float-decoded DECIMAL columns
of a RocksDB table, and ``_key`` not depending on the plan.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from sql import Catalog, compile_query
from sql.errors import CastError
from sql.types import to_interval
from tables.memory import MemoryTable
from tables.protocol import Table
from tables.spec import TableSpec
from tests.support.rocks import RocksFeeder
from tests.unit.sql.support import same_rows

STREAM = [("x", "BIGINT"), ("amt", "DECIMAL(6,2)"), ("f", "DOUBLE"), ("sym", "VARCHAR")]
RECORDS: list[dict[str, Any]] = [
    {"x": 1, "amt": Decimal("2.50"), "f": 2.5, "sym": "a"},
    {"x": 2, "amt": Decimal("0.10"), "f": 0.1, "sym": "b"},
    {"x": 1, "amt": Decimal("7.00"), "f": 7.0, "sym": "a"},
    {"x": None, "amt": None, "f": None, "sym": None},
    {"x": 3, "amt": Decimal("1.00"), "f": 1.0, "sym": "c"},
    {"x": 2, "amt": Decimal("3.25"), "f": 3.0, "sym": "b"},
]
T_ROWS: list[dict[str, Any]] = [
    {"k": 1, "grp": "a", "v": Decimal("2.50"), "n": 1, "ok": True},
    {"k": 2, "grp": "a", "v": None, "n": 2, "ok": False},
    {"k": 3, "grp": "b", "v": Decimal("0.10"), "n": None, "ok": True},
    {"k": 4, "grp": None, "v": Decimal("7.00"), "n": 7, "ok": None},
]
T_COLS = [
    ("k", "BIGINT"),
    ("grp", "VARCHAR"),
    ("v", "DECIMAL(6,2)"),
    ("n", "BIGINT"),
    ("ok", "BOOLEAN"),
]


def decl(
    name: str, cols: list[tuple[str, str]], kind: str = "TABLE", key: str | None = None
) -> str:
    body = ", ".join(f"{c} {t}" for c, t in cols) + (f", PRIMARY KEY ({key})" if key else "")
    return f"CREATE {kind} {name} ({body}) WITH (topic='{name}');\n"


def duck(tables: dict[str, tuple[list[tuple[str, str]], list[dict[str, Any]]]]) -> Any:
    con = duckdb.connect()
    con.execute("SET scalar_subquery_error_on_multiple_rows=true")
    for name, (cols, rows) in tables.items():
        con.execute(f"CREATE TABLE {name} ({', '.join(f'{c} {t}' for c, t in cols)})")
        for r in rows:
            marks = ", ".join(f"?::{t}" for _, t in cols)
            con.execute(f"INSERT INTO {name} VALUES ({marks})", [r.get(c) for c, _ in cols])
    return con


def memory_t() -> MemoryTable:
    t = MemoryTable("t", key_field="k")
    for r in T_ROWS:
        t.put_row(r)
    return t


def per_record(sql: str, tables: dict[str, Table], con: Any) -> None:
    """Each record's rows against DuckDB with the record as the one-row table ``s``."""
    q = compile_query(
        decl("t", T_COLS, key="k") + decl("s", STREAM, "STREAM") + sql, Catalog.of(tables)
    )
    try:
        for r in RECORDS:
            con.execute(
                "CREATE OR REPLACE TABLE s AS SELECT "
                + ", ".join(f"?::{t} AS {c}" for c, t in STREAM),
                [r[c] for c, _ in STREAM],
            )
            theirs = [tuple(x) for x in con.execute(sql).fetchall()]
            ours = [tuple(x.values()) for x in q.process(r)]
            assert same_rows(sorted(ours, key=repr), sorted(theirs, key=repr)), (
                sql,
                r,
                ours,
                theirs,
            )
    finally:
        q.close()


@pytest.mark.parametrize(
    "sql",
    [
        # JOIN ON with subqueries (inner and left; uncorrelated and correlated)
        "SELECT s.x, t.grp FROM s JOIN t ON t.k = s.x AND t.grp IN (SELECT grp FROM t WHERE ok)",
        "SELECT s.x, t.v FROM s LEFT JOIN t ON t.k = s.x"
        " AND EXISTS (SELECT 1 FROM t t2 WHERE t2.grp = s.sym AND t2.v > s.amt)",
        "SELECT s.sym, t.k FROM s JOIN t ON t.grp = s.sym AND t.v >= (SELECT MIN(v) FROM t)",
        # WHERE over joins: stream-only terms run before the join, the rest after it
        "SELECT s.x, t.grp FROM s JOIN t ON t.k = s.x"
        " WHERE s.amt > 1 AND t.ok AND s.sym IN (SELECT grp FROM t WHERE n > 0)",
        "SELECT s.x, t.v FROM s LEFT JOIN t ON t.k = s.x WHERE s.x IS NOT NULL"
        " AND (t.v IS NULL OR EXISTS (SELECT 1 FROM t t2 WHERE t2.grp = t.grp AND t2.k <> t.k))",
        # nested: a correlated subquery inside a subquery's WHERE
        "SELECT s.x FROM s WHERE s.x IN (SELECT k FROM t WHERE t.v > (SELECT MIN(t3.v) FROM t t3"
        " WHERE t3.grp = t.grp) OR t.n = s.x)",
        # inner GROUP BY / HAVING / DISTINCT / expressions
        "SELECT s.sym, s.sym IN (SELECT DISTINCT grp FROM t WHERE n IS NOT NULL GROUP BY grp"
        " HAVING SUM(n) > 1) AS g, (SELECT MAX(v) * 2 + 1 FROM t WHERE grp = s.sym) AS m FROM s",
        # numeric comparison across BIGINT, DECIMAL and DOUBLE compares values
        "SELECT s.x = s.amt AS a, s.amt = s.f AS b, s.f > s.x AS c,"
        " s.amt IN (SELECT v FROM t) AS d, s.f IN (SELECT v FROM t) AS e,"
        " s.x IN (SELECT v FROM t) AS g,"
        " (SELECT COUNT(*) FROM t WHERE t.v = s.f) AS h FROM s",
        # NOT IN three-valued: NULL in the set, NULL probe, empty set
        "SELECT s.x NOT IN (SELECT n FROM t) AS a, s.x NOT IN (SELECT n FROM t WHERE n > 100) AS b,"
        " s.x NOT IN (SELECT k FROM t) AS c FROM s",
    ],
)
def test_subquery_placements_match_duckdb(sql: str) -> None:
    t = memory_t()
    con = duck({"t": (T_COLS, T_ROWS)})
    per_record(sql, {"t": t}, con)


def test_having_with_subqueries_emit_changes_matches_duckdb() -> None:
    """EMIT CHANGES: each record emits its group's row as of the input so far (if HAVING holds)."""
    t = memory_t()
    sql = (
        "SELECT sym, COUNT(*) AS n, SUM(amt) AS total FROM s GROUP BY sym"
        " HAVING SUM(amt) > (SELECT MIN(v) FROM t) AND sym IN (SELECT grp FROM t WHERE ok)"
    )
    q = compile_query(
        decl("t", T_COLS, key="k") + decl("s", STREAM, "STREAM") + sql, Catalog.of({"t": t})
    )
    con = duck({"t": (T_COLS, T_ROWS), "s": (STREAM, [])})
    try:
        emitted = 0
        for r in RECORDS:
            con.execute(
                "INSERT INTO s VALUES (?::BIGINT, ?::DECIMAL(6,2), ?::DOUBLE, ?)",
                [r[c] for c, _ in STREAM],
            )
            ours = [tuple(x.values()) for x in q.process(r)]
            where = "sym IS NULL" if r["sym"] is None else "sym = ?"
            args = [] if r["sym"] is None else [r["sym"]]
            theirs = [
                tuple(x)
                for x in con.execute(
                    sql.replace("FROM s GROUP", f"FROM s WHERE {where} GROUP"), args
                ).fetchall()
            ]
            assert same_rows(ours, theirs), (r, ours, theirs)
            emitted += len(ours)
        assert emitted > 0  # the case is not vacuous
    finally:
        q.close()


def test_nested_json_paths_match_duckdb_structs() -> None:
    users = MemoryTable("users", key_field="id")
    rows: list[dict[str, Any]] = [
        {"id": 1, "addr": {"city": "Oslo", "tags": ["a", "b"], "geo": {"lat": Decimal("59.91")}}},
        {"id": 2, "addr": {"city": "Rome", "tags": [], "geo": None}},
        {"id": 3, "addr": None},
    ]
    for r in rows:
        users.put_row(r)
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE users (id BIGINT,"
        " addr STRUCT(city VARCHAR, tags VARCHAR[], geo STRUCT(lat DECIMAL(6,2))))"
    )
    for r in rows:
        con.execute("INSERT INTO users VALUES (?, ?)", [r["id"], r["addr"]])
    sql = (
        "SELECT s.x, (SELECT u.addr.city FROM users u WHERE u.id = s.x) AS city,"
        " (SELECT u.addr.tags[1] FROM users u WHERE u.id = s.x) AS first_tag,"
        " (SELECT u.addr.geo.lat FROM users u WHERE u.id = s.x) AS lat,"
        " (SELECT COUNT(*) FROM users u WHERE u.addr.city = 'Oslo') AS oslo FROM s"
    )
    q = compile_query(decl("s", STREAM, "STREAM") + sql, Catalog.of({"users": users}))
    for x in (1, 2, 3, 4):
        con.execute("CREATE OR REPLACE TABLE s AS SELECT ?::BIGINT AS x", [x])
        theirs = [tuple(r) for r in con.execute(sql).fetchall()]
        ours = [tuple(r.values()) for r in q.process({"x": x})]
        assert same_rows(ours, theirs), (x, ours, theirs)
    q.close()


def test_temporal_and_interval_columns_match_duckdb() -> None:
    cols = [("ts", "TIMESTAMP"), ("day", "DATE"), ("dur", "INTERVAL"), ("seen", "DATETIME")]
    sql = (
        "SELECT ts + dur AS a, CAST(ts AS DATE) = day AS b, ts - INTERVAL 90 MINUTE AS c,"
        " day + INTERVAL 1 DAY AS d, day - DATE '2024-01-01' AS g, day + INTERVAL 90 MINUTE AS h,"
        " seen > TIMESTAMP '2024-01-01 00:00:00' AS e, dur AS f, day <= ts AS i,"
        " day = CAST(ts AS DATE) + INTERVAL 0 DAY AS j FROM s"
    )
    q = compile_query(decl("s", cols, "STREAM") + sql, Catalog())
    records: list[dict[str, Any]] = [
        {
            "ts": "2024-03-01 10:00:00",
            "day": "2024-03-01",
            "dur": "1 day 02:00:00",
            "seen": "2024-02-01T00:00:00",
        },
        {
            "ts": "2023-12-31 23:30:00",
            "day": "2024-01-01",
            "dur": "90 minutes",
            "seen": "2023-06-01 12:00:00",
        },
        {"ts": None, "day": None, "dur": None, "seen": None},
    ]
    con = duckdb.connect()
    for r in records:
        con.execute(
            "CREATE OR REPLACE TABLE s AS SELECT ?::TIMESTAMP AS ts, ?::DATE AS day,"
            " ?::INTERVAL AS dur, ?::TIMESTAMP AS seen",
            [r[c] for c, _ in cols],
        )
        theirs = [tuple(x) for x in con.execute(sql).fetchall()]
        ours = [tuple(x.values()) for x in q.process(r)]
        assert same_rows(ours, theirs), (r, ours, theirs)
    assert isinstance(q.process(records[0])[0]["a"], dt.datetime)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90 minutes", 5400),
        ("1 day 02:00:00", 93600),
        ("01:30", 5400),
        ("P1DT2H", 93600),
        ("500 ms", 0.5),
        ("2h30m", 9000),
        ("-01:00:00", -3600),
        ("1 hour 2 minutes 3 seconds", 3723),
    ],
)
def test_interval_text_forms(text: str, seconds: float) -> None:
    assert to_interval(text) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["1 month", "", "abc", "5", "3 fortnights"])
def test_interval_text_refused(text: str) -> None:
    with pytest.raises(CastError):
        to_interval(text)


@pytest.fixture
def rocks_prices(tmp_path: Path) -> Iterator[RocksFeeder]:
    feeder = RocksFeeder(TableSpec("prices", "prices", key_field="sym"), tmp_path)
    yield feeder
    feeder.close()


def test_index_probe_on_float_decoded_decimals_matches_duckdb(rocks_prices: RocksFeeder) -> None:
    """The worker decodes JSON 0.10 as float 0.1; the column is DECIMAL. A probe with the DECIMAL
    (or DOUBLE) value must find it, as a scan does — the index buckets raw Python values."""
    rows: list[dict[str, Any]] = [
        {"sym": "A", "px": Decimal("0.10")},
        {"sym": "B", "px": Decimal("2.50")},
        {"sym": "C", "px": 1},
        {"sym": "D", "px": Decimal("0.30")},
        {"sym": "E", "px": None},
    ]
    rocks_prices.apply([(r["sym"], r) for r in rows])
    assert rocks_prices.table.get("A") == {"sym": "A", "px": 0.1}  # really a float on this path
    pcols = [("sym", "VARCHAR"), ("px", "DECIMAL(10,2)")]
    scols = [("p", "DECIMAL(10,2)"), ("d", "DOUBLE"), ("i", "BIGINT")]
    sql = (
        "SELECT (SELECT COUNT(*) FROM prices WHERE px = s.p) AS by_decimal,"
        " (SELECT COUNT(*) FROM prices WHERE px = s.d) AS by_double,"
        " (SELECT COUNT(*) FROM prices WHERE px = s.i) AS by_int,"
        " EXISTS (SELECT 1 FROM prices WHERE px = s.p) AS e FROM s"
    )
    q = compile_query(
        decl("prices", pcols, key="sym") + decl("s", scols, "STREAM") + sql,
        Catalog.of({"prices": rocks_prices.table}),
    )
    assert q.explain().count("index probe") == 4
    con = duck({"prices": (pcols, rows)})
    for p in ["0.1", "2.5", "1", "0.3", "9"]:
        r = {"p": Decimal(p), "d": float(p), "i": int(Decimal(p))}
        con.execute(
            "CREATE OR REPLACE TABLE s AS"
            " SELECT ?::DECIMAL(10,2) AS p, ?::DOUBLE AS d, ?::BIGINT AS i",
            [r["p"], r["d"], r["i"]],
        )
        theirs = [tuple(x) for x in con.execute(sql).fetchall()]
        ours = [tuple(x.values()) for x in q.process(r)]
        assert same_rows(ours, theirs), (p, ours, theirs)
    q.close()


def test_key_pseudo_column_does_not_depend_on_the_plan() -> None:
    t = memory_t()
    sql = (
        "SELECT (SELECT _key FROM t WHERE k = s.x) AS by_lookup,"
        " (SELECT _key FROM t WHERE k + 0 = s.x) AS by_scan,"
        " (SELECT _key FROM t WHERE n = s.x) AS by_probe,"
        " (SELECT _key FROM t WHERE n + 0 = s.x) AS by_scan_n FROM s"
    )
    q = compile_query(
        decl("t", T_COLS, key="k") + decl("s", STREAM, "STREAM") + sql, Catalog.of({"t": t})
    )
    plan = q.explain()
    assert "key lookup" in plan
    assert "FULL SCAN" in plan
    assert "index probe" in plan
    found = 0
    for r in RECORDS:
        (row,) = q.process(r)
        assert row["by_lookup"] == row["by_scan"]
        assert row["by_probe"] == row["by_scan_n"]
        for v in row.values():
            assert v is None or isinstance(v, str)
            found += v is not None
    assert found > 0
    q.close()


def test_index_probe_finds_numbers_stored_as_json_strings() -> None:
    """``{"px": "0.10"}`` in a DECIMAL column is the number 0.10 to ``=`` (the read converts it);
    an index probe must find it too, and agree with a scan and with DuckDB. The reverse holds
    for a VARCHAR column holding JSON numbers probed with text."""
    prices = MemoryTable("prices", key_field="sym")
    stored: list[dict[str, Any]] = [
        {"sym": "A", "px": "0.10", "code": 7},
        {"sym": "B", "px": " 2.5", "code": "07"},
        {"sym": "C", "px": 1, "code": "x"},
        {"sym": "D", "px": "1.00", "code": 7.5},
        {"sym": "E", "px": None, "code": None},
    ]
    for r in stored:
        prices.put_row(r)
    pcols = [("sym", "VARCHAR"), ("px", "DECIMAL(10,2)"), ("code", "VARCHAR")]
    scols = [("p", "DECIMAL(10,2)"), ("d", "DOUBLE"), ("i", "BIGINT"), ("c", "VARCHAR")]
    sql = (
        "SELECT (SELECT COUNT(*) FROM prices WHERE px = s.p) AS by_decimal,"
        " (SELECT COUNT(*) FROM prices WHERE px = s.d) AS by_double,"
        " (SELECT COUNT(*) FROM prices WHERE px = s.i) AS by_int,"
        " (SELECT COUNT(*) FROM prices WHERE px + 0 = s.p) AS by_scan,"
        " (SELECT COUNT(*) FROM prices WHERE code = s.c) AS by_text FROM s"
    )
    q = compile_query(
        decl("prices", pcols, key="sym") + decl("s", scols, "STREAM") + sql,
        Catalog.of({"prices": prices}),
    )
    assert q.explain().count("index probe") == 4
    # DuckDB holds what a declared read makes of each stored value.
    con = duck(
        {
            "prices": (
                pcols,
                [{**r, "code": None if r["code"] is None else str(r["code"])} for r in stored],
            )
        }
    )
    checked = 0
    for p, c in [("0.1", "7"), ("2.5", "07"), ("1", "7.5"), ("9", "x"), ("0.10", "7.50")]:
        r = {"p": Decimal(p), "d": float(p), "i": int(Decimal(p)), "c": c}
        con.execute(
            "CREATE OR REPLACE TABLE s AS SELECT ?::DECIMAL(10,2) AS p, ?::DOUBLE AS d,"
            " ?::BIGINT AS i, ?::VARCHAR AS c",
            [r["p"], r["d"], r["i"], r["c"]],
        )
        theirs = [tuple(x) for x in con.execute(sql).fetchall()]
        (row,) = q.process(r)
        assert same_rows([tuple(row.values())], theirs), (p, row, theirs)
        assert row["by_decimal"] == row["by_scan"]
        checked += row["by_decimal"] + row["by_text"]
    assert checked >= 5
    q.close()
