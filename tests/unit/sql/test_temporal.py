"""Temporal joins and subqueries: a versioned table read as of each record's event time."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from sql import BindError, Catalog, SqlTypeError, UnsupportedError, compile_query
from sql.operators.as_of import AsOfExpiredError, AsOfTimeError
from tests.support.sql_temporal import DECLS, prices, run

ORDERS: list[dict[str, Any]] = [
    {"id": 1, "sku": "a", "ts": 999},
    {"id": 2, "sku": "a", "ts": 1200},
    {"id": 3, "sku": "a", "ts": 1700},
    {"id": 4, "sku": "a", "ts": 2999},
    {"id": 5, "sku": "a", "ts": 5000},
    {"id": 6, "sku": "b", "ts": 2000},
    {"id": 7, "sku": "b", "ts": 2500},
]
AS_OF = {1: None, 2: "10.00", 3: "10.50", 4: "11.00", 5: "12.00", 6: "5.00", 7: None}


def expected(ids: list[int]) -> list[dict[str, Any]]:
    return [
        {"id": i, "price": None if AS_OF[i] is None else Decimal(AS_OF[i])}  # type: ignore[arg-type]
        for i in ids
    ]


def test_left_join_as_of_the_order_time_sees_history_not_latest() -> None:
    rows = run(
        "SELECT o.id, p.price FROM orders o "
        "LEFT JOIN prices FOR SYSTEM_TIME AS OF o.ts AS p ON p.sku = o.sku",
        prices(),
        ORDERS,
    )
    assert rows == expected([o["id"] for o in ORDERS])


def test_inner_join_drops_orders_without_a_row_then() -> None:
    rows = run(
        "SELECT o.id, p.price FROM orders o "
        "JOIN prices FOR SYSTEM_TIME AS OF o._event_time p ON o.sku = p.sku",
        prices(),
        ORDERS,
    )
    assert rows == expected([i for i, v in AS_OF.items() if v is not None])


def test_without_as_of_the_join_sees_the_latest() -> None:
    rows = run(
        "SELECT o.id, p.price FROM orders o LEFT JOIN prices p ON p.sku = o.sku",
        prices(),
        ORDERS[:2],
    )
    assert rows == [{"id": 1, "price": Decimal("12.00")}, {"id": 2, "price": Decimal("12.00")}]


def test_scalar_subquery_as_of() -> None:
    rows = run(
        "SELECT o.id, (SELECT price FROM prices FOR SYSTEM_TIME AS OF o.ts "
        "WHERE sku = o.sku) AS price FROM orders o",
        prices(),
        ORDERS,
    )
    assert rows == expected([o["id"] for o in ORDERS])


def test_timestamp_typed_as_of_expression() -> None:
    rows = run(
        "SELECT o.id, p.price FROM orders o JOIN prices "
        "FOR SYSTEM_TIME AS OF CAST('1970-01-01 00:00:01.700' AS TIMESTAMP) AS p ON p.sku = o.sku",
        prices(),
        ORDERS[:1],
    )
    assert rows == [{"id": 1, "price": Decimal("10.50")}]


def test_expired_history_is_null_or_a_per_record_error() -> None:
    sql = (
        "SELECT o.id, p.price FROM orders o "
        "LEFT JOIN prices FOR SYSTEM_TIME AS OF o.ts AS p ON p.sku = o.sku"
    )
    old = [{"id": 9, "sku": "a", "ts": 1000}]  # stream time 3000, retention 1s: horizon 2000
    assert run(sql, prices(history_retention_ms=1000), old) == [{"id": 9, "price": None}]
    with pytest.raises(AsOfExpiredError) as info:
        run(sql, prices(history_retention_ms=1000, as_of_expired="error"), old)
    assert info.value.fields["table"] == "prices"
    assert info.value.fields["timestamp"] == 1000
    assert info.value.record == old[0]


def test_bad_as_of_value_is_a_per_record_error() -> None:
    sql = (
        "SELECT o.id, p.price FROM orders o "
        "JOIN prices FOR SYSTEM_TIME AS OF o.note AS p ON p.sku = o.sku"
    )
    decls = DECLS.replace("ts BIGINT)", "ts BIGINT, note VARCHAR)")
    query = compile_query(decls + sql, Catalog.of({"prices": prices()}))
    with pytest.raises(AsOfTimeError, match="'soon' is not an event time"):
        query.process({"id": 1, "sku": "a", "ts": 1, "note": "soon"})
    assert query.process({"id": 1, "sku": "a", "ts": 1, "note": "1970-01-01T00:00:02"}) == [
        {"id": 1, "price": Decimal("11.00")}
    ]


@pytest.mark.parametrize(
    ("sql", "error", "needle"),
    [
        (
            "SELECT o.id FROM orders o JOIN prices FOR SYSTEM_TIME AS OF o.ts p ON p.price > 1",
            UnsupportedError,
            "needs an equality on its key (sku)",
        ),
        (
            "SELECT o.id FROM orders o JOIN prices FOR SYSTEM_TIME FROM 1 TO 3 p ON p.sku = o.sku",
            UnsupportedError,
            "FOR TIMESTAMP FROM (1, 3) is not supported",
        ),
        (
            "SELECT o.id FROM orders o JOIN prices FOR SYSTEM_VERSION AS OF o.ts p "
            "ON p.sku = o.sku",
            BindError,
            "FOR SYSTEM_VERSION AS OF needs a snapshot id (a whole number literal), got o.ts",
        ),
        (
            "SELECT o.id FROM orders o JOIN prices FOR SYSTEM_TIME AS OF (o.ts > 1) p "
            "ON p.sku = o.sku",
            SqlTypeError,
            "must be a TIMESTAMP, DATE or epoch milliseconds, got BOOLEAN",
        ),
        (
            "SELECT o.id FROM orders o JOIN prices FOR SYSTEM_TIME AS OF p.price p "
            "ON p.sku = o.sku",
            BindError,
            "unknown table alias 'p'",
        ),
    ],
)
def test_compile_errors(sql: str, error: type[Exception], needle: str) -> None:
    with pytest.raises(error) as info:
        compile_query(DECLS + sql, Catalog.of({"prices": prices()}))
    assert needle in str(info.value)
    assert getattr(info.value, "line", 0) == 4
