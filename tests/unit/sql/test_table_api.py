"""The seed's table API (``Queryable``) and ``ProcessorContext``, on a MemoryTable and on a real
RocksDB-backed ReferenceTable (fed by the loader's own apply step, no broker).

Every answer is checked against DuckDB holding the same rows, before and after rounds of random
inserts, updates and deletes: a call compiled once (and cached) must keep answering for the table
as it is now, whatever strategy the planner picked for it.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from sql import BindError, ScalarSubqueryError, SqlError
from sql.context import ProcessorContext
from sql.table_api import Queryable
from sql.types import BIGINT, BOOLEAN, STRING, SqlType
from tables.memory import MemoryTable
from tables.protocol import LocalTable as Table
from tables.spec import TableSpec
from tests.support.rocks import RocksFeeder
from tests.unit.sql.support import same_value

COLUMNS = [
    ("id", "BIGINT"),
    ("tier", "VARCHAR"),
    ("age", "BIGINT"),
    ("score", "DECIMAL(6,2)"),
    ("enabled", "BOOLEAN"),
]
DECLARED: dict[str, SqlType] = {
    "id": BIGINT,
    "tier": STRING,
    "age": BIGINT,
    "score": SqlType("DECIMAL", 6, 2),
    "enabled": BOOLEAN,
}
WHERES = [
    "",
    "tier = 'gold'",
    "id = 7",
    "enabled = true",
    "age > 30 AND tier IS NOT NULL",
    "score >= 1.50",
    "tier IN ('gold', 'silver') OR age IS NULL",
    "NOT enabled",
]
SCALARS = [
    ("MAX(score)", ""),
    ("MIN(score)", "enabled"),
    ("COUNT(*)", "tier = 'gold'"),
    ("SUM(score)", ""),
    ("AVG(age)", ""),
    ("COUNT(DISTINCT tier)", ""),
    ("MIN(tier)", ""),
    ("age", "id = 7"),
    ("score * 2", "id = 3"),
]
VALUES = [("age + 1", "tier = 'gold'"), ("score", ""), ("tier", "enabled"), ("id", "age < 20")]

Put = Callable[[int, dict[str, Any] | None], None]


def random_row(rng: random.Random, key: int) -> dict[str, Any]:
    def maybe(v: Any) -> Any:
        return None if rng.random() < 0.15 else v

    return {
        "id": key,
        "tier": maybe(rng.choice(["gold", "silver", "bronze"])),
        "age": maybe(rng.randrange(0, 60)),
        "score": maybe(Decimal(rng.randrange(-300, 300)).scaleb(-2)),
        "enabled": maybe(rng.random() < 0.5),
    }


@pytest.fixture(params=["memory", "rocksdb"])
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Table, Put, Queryable]]:
    if request.param == "memory":
        mem = MemoryTable("users", key_field="id")

        def put_mem(key: int, row: dict[str, Any] | None) -> None:
            mem.put(key, row)

        # Undeclared: column types are inferred from the rows.
        yield mem, put_mem, Queryable(mem)
        return
    # The worker's default decoding (JSON numbers with a fraction → float), with the columns
    # declared: DECIMAL(6,2) values are read exactly from the float's shortest repr.
    feeder = RocksFeeder(TableSpec("users", "users", key_field="id"), tmp_path)
    q = Queryable(feeder.table, DECLARED)
    yield feeder.table, feeder.put, q
    q.close()
    feeder.close()


def duck_of(table: Table) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(f"CREATE TABLE users ({', '.join(f'{c} {t}' for c, t in COLUMNS)})")
    rows = [
        tuple(None if v.get(c) is None else str(v[c]) for c, _ in COLUMNS)
        for v in table.snapshot().values()
    ]
    if rows:
        marks = ", ".join(f"?::{t}" for _, t in COLUMNS)
        con.executemany(f"INSERT INTO users VALUES ({marks})", rows)
    return con


def where_sql(where: str) -> str:
    return f" WHERE {where}" if where else ""


def canon(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return repr(v)


def check_all(table: Table, q: Queryable) -> None:
    con = duck_of(table)
    try:
        for where in WHERES:
            ids = {
                str(r[0]) for r in con.execute(f"SELECT id FROM users{where_sql(where)}").fetchall()
            }
            got = q.sql_filter(where)
            assert set(got) == ids, where
            assert all(got[k] == table.get(k) for k in got)
            assert q.sql_exists(where) is bool(ids), where
        for expr, where in VALUES:
            theirs = [
                r[0] for r in con.execute(f"SELECT {expr} FROM users{where_sql(where)}").fetchall()
            ]
            ours = q.sql_column_values(expr, where)
            assert Counter(map(canon, ours)) == Counter(map(canon, theirs)), (expr, where)
        for expr, where in SCALARS:
            (theirs,) = con.execute(f"SELECT {expr} FROM users{where_sql(where)}").fetchone() or (
                None,
            )
            ours = q.sql_scalar(expr, where)
            assert same_value(ours, theirs), (expr, where, ours, theirs)
    finally:
        con.close()


def test_four_calls_match_duckdb_and_track_changes(setup: tuple[Table, Put, Queryable]) -> None:
    table, put, q = setup
    rng = random.Random(3)
    for key in range(40):
        put(key, random_row(rng, key))
    check_all(table, q)
    for _ in range(4):  # rounds of inserts, updates and deletes between calls
        for _ in range(25):
            key = rng.randrange(50)
            put(key, None if rng.random() < 0.3 else random_row(rng, key))
        check_all(table, q)
    # Every distinct call was compiled once and is still the cached one.
    assert len(q.explain()) == len(WHERES) * 2 + len(VALUES) + len(SCALARS)


def test_cached_compile_picks_the_cheap_strategies(setup: tuple[Table, Put, Queryable]) -> None:
    _table, put, q = setup
    for key in range(10):
        put(key, {"id": key, "tier": "gold", "age": key, "score": Decimal("1.00"), "enabled": True})
    q.sql_scalar("age", "id = 7")
    q.sql_exists("enabled = true")
    q.sql_scalar("MAX(score)")
    q.sql_scalar("COUNT(*)", "tier = 'gold'")
    q.sql_filter("tier = 'gold'")
    q.sql_column_values("tier", "age > 3")
    plans = q.explain()
    assert "key lookup [id = 7]" in plans[("scalar", "age", "id = 7")]
    assert "maintained EXISTS count" in plans[("exists", "1", "enabled = true")]
    assert "maintained aggregate [MAX via ordered multiset" in plans[("scalar", "MAX(score)", "")]
    assert "maintained aggregate [COUNT in O(1)]" in plans[("scalar", "COUNT(*)", "tier = 'gold'")]
    assert "index probe [tier = 'gold']" in plans[("rows", "_key", "tier = 'gold'")]
    assert "maintained result" in plans[("rows", "tier", "age > 3")]
    assert not any("FULL SCAN" in p for p in plans.values())
    # The maintained structures follow the table: a delete and an update between two calls.
    put(7, None)
    put(8, {"id": 8, "tier": "gold", "age": 8, "score": Decimal("9.25"), "enabled": False})
    assert q.sql_scalar("age", "id = 7") is None
    assert q.sql_scalar("MAX(score)") == Decimal("9.25")
    assert q.sql_scalar("COUNT(*)", "tier = 'gold'") == 9
    for key in range(10):
        put(key, None)
    assert q.sql_exists("enabled = true") is False
    assert q.sql_scalar("MAX(score)") is None


def test_scalar_with_several_rows_is_an_error_none_is_null(
    setup: tuple[Table, Put, Queryable],
) -> None:
    _table, put, q = setup
    put(1, {"id": 1, "tier": "gold", "age": 1, "score": None, "enabled": True})
    put(2, {"id": 2, "tier": "gold", "age": 2, "score": None, "enabled": True})
    with pytest.raises(ScalarSubqueryError):
        q.sql_scalar("age", "tier = 'gold'")
    assert q.sql_scalar("age", "tier = 'none'") is None
    put(2, None)
    assert q.sql_scalar("age", "tier = 'gold'") == 1  # the cached plan follows the delete


def test_error_in_a_fragment_points_into_the_fragment(
    setup: tuple[Table, Put, Queryable],
) -> None:
    _table, put, q = setup
    put(1, {"id": 1, "tier": "gold", "age": 1, "score": None, "enabled": True})
    with pytest.raises(BindError) as info:
        q.sql_filter("tier = 'gold' AND agee > 3")
    err = info.value
    assert (err.line, err.column) == (2, 19)
    assert err.suggestion == "age"


# -- ProcessorContext ------------------------------------------------------------------------------
def test_processor_context_tables_loader_and_compile(tmp_path: Path) -> None:
    loaded: list[tuple[str, str, dict[str, str]]] = []
    feeders: list[RocksFeeder] = []

    def loader(name: str, topic: str, config: Any) -> Table:
        loaded.append((name, topic, dict(config)))
        feeder = RocksFeeder(TableSpec(name, topic, key_field=config.get("key")), tmp_path)
        feeders.append(feeder)
        feeder.put("AAA", {"sym": "AAA", "max_price": Decimal("10.50")})
        return feeder.table

    users = MemoryTable("users", key_field="id")
    users.put_row({"id": 1, "tier": "gold"})
    ctx = ProcessorContext({"users": users}, loader=loader)
    assert ctx.get_table("users") is users
    assert ctx.get_table("nope") is None
    limits = ctx.load_reference_table("limits", "limits-topic", {"key": "sym"})
    assert ctx.state_tables["limits"] is limits
    assert loaded == [("limits", "limits-topic", {"key": "sym"})]
    assert limits.get("AAA") == {"sym": "AAA", "max_price": 10.5}

    q = ctx.compile(
        "CREATE STREAM trades (symbol STRING, price DECIMAL(10,2), user_id BIGINT)"
        " WITH (topic='trades');\n"
        "SELECT t.symbol, t.price > (SELECT l.max_price FROM limits l WHERE l.sym = t.symbol)"
        " AS over, t.user_id IN (SELECT id FROM users WHERE tier = 'gold') AS gold FROM trades t"
    )
    plan = q.explain()
    assert "on limits: key lookup" in plan
    assert "on users: maintained IN-set" in plan
    rows = q.process({"symbol": "AAA", "price": Decimal("11.00"), "user_id": 1})
    assert rows == [{"symbol": "AAA", "over": True, "gold": True}]
    users.put_row({"id": 1, "tier": "silver"})
    feeders[0].put("AAA", {"sym": "AAA", "max_price": Decimal("12")})
    rows = q.process({"symbol": "AAA", "price": Decimal("11.00"), "user_id": 1})
    assert rows == [{"symbol": "AAA", "over": False, "gold": False}]
    q.close()

    # A table declared in the SQL but not in the context is loaded through the loader.
    q2 = ctx.compile(
        "CREATE TABLE prices (sym STRING, px DECIMAL(10,2), PRIMARY KEY (sym))"
        " WITH (topic='prices-topic', key='sym');\n"
        "SELECT s.sym, (SELECT px FROM prices p WHERE p.sym = s.sym) AS px FROM s",
        s=None,
    )
    assert loaded[-1] == ("prices", "prices-topic", {"topic": "prices-topic", "key": "sym"})
    assert q2.process({"sym": "AAA"}) == [{"sym": "AAA", "px": None}]
    q2.close()

    assert ctx.queryable("users") is ctx.queryable("users")
    assert ctx.queryable("nope") is None
    gold = ctx.queryable("users")
    assert gold is not None
    assert gold.sql_column_values("tier") == ["silver"]
    for f in feeders:
        f.close()


def test_processor_context_without_loader_names_table_and_topic() -> None:
    ctx = ProcessorContext()
    with pytest.raises(SqlError) as info:
        ctx.load_reference_table("limits", "limits-topic")
    assert info.value.fields["table"] == "limits"
    assert info.value.fields["topic"] == "limits-topic"
    assert "limits-topic" in str(info.value)
