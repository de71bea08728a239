"""The co-partitioning rule (sql.compile.partitioning) and the stream key declaration it reads:
a GROUP BY holding the stream's record key runs without a repartition topic."""

from __future__ import annotations

import pytest
import sqlglot

from sql import (
    COPARTITIONED,
    EVERY_PARTITION,
    REPARTITIONED,
    BindError,
    CompiledQuery,
    compile_query,
)
from sql.compile.partitioning import partitioning
from sql.dialect import Tablestream
from tables.memory import MemoryTable

USERS = "CREATE TABLE users (id BIGINT PRIMARY KEY, tier VARCHAR) WITH (topic='u');\n"


def group_of(select: str) -> list[sqlglot.exp.Expr]:
    tree = sqlglot.parse_one(select, dialect=Tablestream)
    group = tree.args.get("group")
    return list(group.expressions) if group is not None else []


@pytest.mark.parametrize(
    ("select", "key", "mode", "column"),
    [
        (
            "SELECT user_id, COUNT(*) FROM orders GROUP BY user_id",
            "user_id",
            COPARTITIONED,
            "user_id",
        ),
        (
            "SELECT o.user_id, COUNT(*) FROM orders o GROUP BY o.user_id",
            "USER_ID",
            COPARTITIONED,
            "USER_ID",
        ),
        # A superset of the key: the records of a group still share their key.
        (
            "SELECT user_id, sym, COUNT(*) FROM orders GROUP BY sym, user_id",
            "user_id",
            COPARTITIONED,
            "user_id",
        ),
        ("SELECT _key, COUNT(*) FROM orders GROUP BY _key", None, COPARTITIONED, None),
        ("SELECT sym, COUNT(*) FROM orders GROUP BY sym", "user_id", REPARTITIONED, None),
        ("SELECT user_id, COUNT(*) FROM orders GROUP BY user_id", None, REPARTITIONED, None),
        # An expression of the key column is not the key (its groups span several keys).
        ("SELECT COUNT(*) FROM orders GROUP BY user_id % 10", "user_id", REPARTITIONED, None),
        # Another relation's column of the same name is not the stream's.
        ("SELECT COUNT(*) FROM orders o GROUP BY u.user_id", "user_id", REPARTITIONED, None),
        ("SELECT COUNT(*) FROM orders", "user_id", REPARTITIONED, None),
    ],
)
def test_the_rule(select: str, key: str | None, mode: str, column: str | None) -> None:
    alias = "o" if " o " in select or select.endswith(" o") else "orders"
    got = partitioning(group_of(select), "orders", alias, key)
    assert (got.mode, got.key_column) == (mode, column), got.reason


def test_a_select_alias_shadowing_the_key_is_not_taken_for_it() -> None:
    group = group_of("SELECT sym AS user_id, COUNT(*) FROM orders GROUP BY user_id")
    got = partitioning(group, "orders", "orders", "user_id", shadowed={"user_id"})
    assert got.mode == REPARTITIONED
    # Qualified, it is the column.
    group = group_of("SELECT sym AS user_id, COUNT(*) FROM orders GROUP BY orders.user_id")
    assert partitioning(group, "orders", "orders", "user_id", shadowed={"user_id"}).copartitioned


def test_a_group_key_reading_a_table_reads_every_partition() -> None:
    got = partitioning(group_of("SELECT 1 GROUP BY u.tier"), "orders", "o", "user_id", whole="why")
    assert (got.mode, got.reason) == (EVERY_PARTITION, "why")


def compiled(stream: str, select: str) -> CompiledQuery:
    users = MemoryTable("users", key_field="id")
    return compile_query(USERS + stream + select, {"users": users})


ORDERS_KEYED = (
    "CREATE STREAM orders (order_id BIGINT, user_id BIGINT, sym VARCHAR) "
    "WITH (topic='o', key='user_id');\n"
)


def test_declarations_and_explain() -> None:
    sink = "CREATE TABLE t WITH (topic='t') AS "
    q = compiled(ORDERS_KEYED, sink + "SELECT user_id, COUNT(*) AS n FROM orders GROUP BY user_id")
    parts = q.partitioning()
    assert parts is not None
    assert (parts.mode, parts.key_column) == (COPARTITIONED, "user_id")
    assert q.explain().splitlines()[1] == (
        "Partitioning co-partitioned: GROUP BY user_id is the key of stream orders (key='user_id')"
    )
    # ksqlDB's column form declares the same.
    ksql = "CREATE STREAM orders (order_id BIGINT, user_id BIGINT KEY) WITH (topic='o');\n"
    parts = compiled(
        ksql, sink + "SELECT user_id, COUNT(*) AS n FROM orders GROUP BY user_id"
    ).partitioning()
    assert parts is not None
    assert parts.copartitioned
    # A group key that reads a joined table: every partition, the reason says which.
    joined = sink + (
        "SELECT u.tier, COUNT(*) AS n FROM orders o JOIN users u ON u.id = o.user_id"
        " GROUP BY u.tier"
    )
    parts = compiled(ORDERS_KEYED, joined).partitioning()
    assert parts is not None
    assert parts.mode == EVERY_PARTITION
    assert "reads table 'u'" in parts.reason
    # Stateless: no partitioning line.
    stateless = "CREATE STREAM s WITH (topic='s') AS SELECT order_id FROM orders"
    q = compiled(ORDERS_KEYED, stateless)
    assert q.partitioning() is None
    assert "Partitioning" not in q.explain()


def test_a_key_that_is_not_a_declared_column_is_an_error_at_its_declaration() -> None:
    stream = (
        "CREATE STREAM orders (order_id BIGINT, user_id BIGINT) WITH (topic='o', key='userid');\n"
    )
    with pytest.raises(BindError) as err:
        compiled(stream, "SELECT user_id, COUNT(*) FROM orders GROUP BY user_id")
    assert "declares key='userid', which is not one of its columns" in err.value.reason
    assert err.value.suggestion == "user_id"
    assert (err.value.line, err.value.column) == (2, 15)
