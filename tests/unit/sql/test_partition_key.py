"""CompiledQuery.partition_key: a stateful query's group key computed from the stream record
alone (what its repartition stage partitions by), equal to the key its aggregate groups by."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from sql import compile_query
from sql.compile.aggregate_key import GroupKey
from sql.errors import CastError, SqlRuntimeError, UnsupportedError
from tables.memory import MemoryTable

DECLS = """\
CREATE TABLE users (id BIGINT PRIMARY KEY, tier VARCHAR) WITH (topic='u');
CREATE STREAM orders (order_id BIGINT, user_id BIGINT, symbol VARCHAR, price DECIMAL(10,2),
                      ts BIGINT) WITH (topic='o', timestamp='ts');
"""


def tables() -> dict[str, MemoryTable]:
    users = MemoryTable("users", key_field="id")
    users.put(1, {"id": 1, "tier": "gold"})
    return {"users": users}


def key_of(select: str) -> GroupKey:
    return compile_query(DECLS + select, tables()).partition_key()


def test_group_by_columns_and_expressions_of_the_stream() -> None:
    key = key_of(
        "SELECT o.user_id, UPPER(symbol) AS s, COUNT(*) FROM orders o"
        " JOIN users u ON u.id = o.user_id GROUP BY o.user_id, UPPER(symbol)"
    )
    assert key({"user_id": 7, "symbol": "aapl"}) == (7, "AAPL")
    # NULLs are a group like any other (SQL groups them together): a key, not an error.
    assert key({"user_id": None}) == (None, None)


def test_the_key_is_the_one_the_aggregate_groups_by() -> None:
    sql = DECLS + "SELECT user_id % 3 AS b, COUNT(*) AS n FROM orders GROUP BY user_id % 3"
    query = compile_query(sql, tables())
    key = query.partition_key()
    groups: dict[tuple[object, ...], int] = {}
    for i in range(20):
        rec = {"user_id": i, "ts": i}
        groups[key(rec)] = query.process(rec)[0]["n"]
    assert groups == {(0,): 7, (1,): 7, (2,): 6}


def test_pseudo_columns_and_event_time_come_from_the_record() -> None:
    key = compile_query(
        DECLS + "SELECT _key, COUNT(*) FROM orders GROUP BY _key, _event_time", tables()
    ).partition_key()
    # _event_time is TIMESTAMP(3): the declared field's epoch milliseconds as a UTC timestamp
    assert key({"ts": 5}, key="k1", timestamp=99) == ("k1", dt.datetime(1970, 1, 1, 0, 0, 0, 5000))


def test_an_aggregate_without_group_by_has_one_empty_key() -> None:
    key = key_of("SELECT COUNT(*) AS n, SUM(price) AS total FROM orders")
    assert key({"price": Decimal("1.50")}) == ()


def test_windowed_queries_are_keyed_by_their_group_by() -> None:
    key = key_of(
        "SELECT symbol, window_start, COUNT(*) FROM orders"
        " WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY symbol"
    )
    assert key({"symbol": "MSFT", "ts": 12_345}) == ("MSFT",)


def test_a_failing_key_raises_the_runtime_error_of_the_record() -> None:
    key = compile_query(
        "CREATE STREAM s (v VARCHAR) WITH (topic='s');\n"
        "SELECT CAST(v AS BIGINT) AS n, COUNT(*) FROM s GROUP BY CAST(v AS BIGINT)",
        {},
    ).partition_key()
    assert key({"v": "12"}) == (12,)
    with pytest.raises(CastError) as info:
        key({"v": "twelve"})
    assert isinstance(info.value, SqlRuntimeError)


def test_keys_reading_a_joined_table_or_a_subquery_are_refused_with_the_reason() -> None:
    with pytest.raises(UnsupportedError) as info:
        key_of(
            "SELECT u.tier, COUNT(*) FROM orders o JOIN users u ON u.id = o.user_id GROUP BY u.tier"
        )
    assert "GROUP BY u.tier" in info.value.reason
    assert "'u'" in info.value.reason
    assert info.value.line == 4  # the query follows the three lines of declarations
    # An unqualified column that only the joined table declares is the table's.
    with pytest.raises(UnsupportedError):
        key_of("SELECT tier, COUNT(*) FROM orders o JOIN users u ON u.id = o.user_id GROUP BY tier")
    with pytest.raises(UnsupportedError) as sub:
        key_of(
            "SELECT COUNT(*) FROM orders o"
            " GROUP BY (SELECT tier FROM users u WHERE u.id = o.user_id)"
        )
    assert "subquery" in sub.value.reason


def test_a_query_that_does_not_aggregate_has_no_group_key() -> None:
    with pytest.raises(UnsupportedError):
        key_of("SELECT order_id FROM orders")
