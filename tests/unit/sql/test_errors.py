"""Every error class, with the line and column it reports (1-based, pointing at the culprit)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.errors import TablestreamError
from sql import (
    BindError,
    CastError,
    Catalog,
    DivisionByZeroError,
    ParseError,
    RuntimeTypeError,
    ScalarSubqueryError,
    SqlError,
    SqlTypeError,
    UnsupportedError,
    compile_query,
)
from sql.types import BIGINT, STRING
from tests.support.sql_errors import DECLS, compile_err, users_catalog, where


def test_all_errors_share_the_root() -> None:
    for cls in (
        ParseError,
        BindError,
        SqlTypeError,
        UnsupportedError,
        ScalarSubqueryError,
        DivisionByZeroError,
    ):
        assert issubclass(cls, SqlError)
        assert issubclass(cls, TablestreamError)


def test_parse_error_in_select() -> None:
    err, sql = compile_err("SELECT user_id,\n  FROM WHERE amount > 1", ParseError)
    assert (err.line, err.column) == where(sql, "WHERE amount")
    assert "^" in err.excerpt
    assert "FROM WHERE" in err.excerpt


def test_parse_error_in_declaration() -> None:
    sql = "CREATE STREAM s (a BIGINT, b NOSUCHTYPE) WITH (topic='s');\nSELECT a FROM s"
    with pytest.raises(ParseError) as info:
        compile_query(sql, Catalog())
    assert (info.value.line, info.value.column) == where(sql, "NOSUCHTYPE")


def test_bad_emit_clause() -> None:
    err, sql = compile_err("SELECT user_id FROM orders EMIT SOMETIMES", ParseError)
    assert (err.line, err.column) == where(sql, "SOMETIMES")


def test_unknown_column_suggests_the_nearest() -> None:
    err, sql = compile_err("SELECT user_id\nFROM orders WHERE amout > 1", BindError)
    assert (err.line, err.column) == where(sql, "amout")
    assert err.suggestion == "amount"
    assert "did you mean 'amount'" in str(err)


def test_unknown_function_suggests_the_nearest() -> None:
    err, sql = compile_err("SELECT user_id,\n  COALESC(note, 'x') AS n FROM orders", BindError)
    assert (err.line, err.column) == where(sql, "COALESC")
    assert err.suggestion == "COALESCE"
    err, _ = compile_err("SELECT FROBNICATE(note) FROM orders", BindError)
    assert err.suggestion is None


def test_unknown_column_in_subquery_suggests_table_column() -> None:
    err, sql = compile_err(
        "SELECT user_id FROM orders o\nWHERE EXISTS (SELECT 1 FROM users u WHERE u.scor > 1)",
        BindError,
    )
    assert (err.line, err.column) == where(sql, "u.scor")
    assert err.suggestion == "score"


def test_unknown_table_suggests() -> None:
    err, sql = compile_err(
        "SELECT user_id FROM orders WHERE user_id IN (SELECT id FROM user)", BindError
    )
    assert (err.line, err.column) == where(sql, "user)")
    assert err.suggestion == "users"


def test_correlated_reference_to_unknown_alias() -> None:
    err, sql = compile_err(
        "SELECT user_id FROM orders o WHERE EXISTS (SELECT 1 FROM users u WHERE u.id = x.user_id)",
        BindError,
    )
    assert (err.line, err.column) == where(sql, "x.user_id")
    assert "unknown table alias 'x'" in err.reason


def test_ambiguous_column() -> None:
    err, sql = compile_err(
        "SELECT id FROM orders o JOIN users u ON u.id = o.user_id JOIN users v ON v.id = o.user_id",
        BindError,
    )
    assert (err.line, err.column) == where(sql, "id FROM")
    assert "ambiguous" in err.reason


def test_subquery_must_return_one_column() -> None:
    err, sql = compile_err(
        "SELECT user_id FROM orders WHERE user_id IN (SELECT id, name FROM users)", BindError
    )
    assert "exactly one column" in err.reason
    assert (err.line, err.column) == where(sql, "id, name")


def test_type_mismatch() -> None:
    err, sql = compile_err("SELECT user_id FROM orders\nWHERE note > amount", SqlTypeError)
    assert (err.line, err.column) == where(sql, "note >")
    assert "STRING" in err.reason
    assert "DECIMAL(10,2)" in err.reason


def test_in_subquery_type_mismatch() -> None:
    err, sql = compile_err(
        "SELECT 1 AS one FROM orders WHERE note IN (SELECT id FROM users)", SqlTypeError
    )
    assert (err.line, err.column) == where(sql, "note IN")


def test_where_must_be_boolean() -> None:
    err, sql = compile_err("SELECT user_id FROM orders WHERE amount + 1", SqlTypeError)
    assert (err.line, err.column) == where(sql, "amount + 1")


def test_aggregate_not_allowed_in_where() -> None:
    err, sql = compile_err("SELECT user_id FROM orders WHERE SUM(amount) > 1", SqlTypeError)
    assert (err.line, err.column) == where(sql, "SUM(amount)")
    assert "aggregate function SUM is not allowed in WHERE" in err.reason


def test_column_not_grouped() -> None:
    err, sql = compile_err(
        "SELECT user_id, note, COUNT(*) AS n FROM orders GROUP BY user_id", SqlTypeError
    )
    assert (err.line, err.column) == where(sql, "note,")


def test_for_system_time_on_a_table_without_history() -> None:
    err, sql = compile_err(
        "SELECT o.user_id FROM orders o\n"
        "JOIN users FOR SYSTEM_TIME AS OF o._timestamp u ON u.id = o.user_id",
        BindError,
    )
    assert (err.line, err.column) == where(sql, "FOR SYSTEM_TIME")
    assert "needs a versioned table, and 'users' keeps no history" in err.reason


def test_right_join_unsupported() -> None:
    err, sql = compile_err(
        "SELECT o.user_id FROM orders o RIGHT JOIN users u ON u.id = o.user_id", UnsupportedError
    )
    assert (err.line, err.column) == where(sql, "users u")


def test_emit_final_needs_group_by() -> None:
    err, sql = compile_err("SELECT user_id FROM orders EMIT FINAL", UnsupportedError)
    assert (err.line, err.column) == where(sql, "EMIT")


def test_scalar_subquery_with_two_rows_fails_that_record_only() -> None:
    q = compile_query(
        DECLS + "SELECT user_id, (SELECT id FROM users WHERE score = 3) AS u FROM orders",
        users_catalog(),
    )
    with pytest.raises(ScalarSubqueryError) as info:
        q.process({"user_id": 7, "amount": Decimal("1.00")}, key="k1", offset=41)
    assert info.value.record == {"user_id": 7, "amount": Decimal("1.00")}
    assert info.value.fields["offset"] == 41
    # The next record is unaffected once the table changes.
    q2 = compile_query(
        DECLS + "SELECT user_id, (SELECT id FROM users WHERE score = 4) AS u FROM orders",
        users_catalog(),
    )
    assert q2.process({"user_id": 7}) == [{"user_id": 7, "u": None}]


def test_division_by_zero_is_a_record_error() -> None:
    q = compile_query(DECLS + "SELECT amount / (user_id - 1) AS r FROM orders", users_catalog())
    assert q.process({"user_id": 3, "amount": Decimal("1.00")}) == [
        {"r": Decimal("0.5000000000000000")}
    ]
    with pytest.raises(DivisionByZeroError) as info:
        q.process({"user_id": 1, "amount": Decimal("1.00")})
    assert info.value.record["user_id"] == 1
    assert q.process({"user_id": 2, "amount": Decimal("1.00")}) == [
        {"r": Decimal("1.0000000000000000")}
    ]


def test_runtime_type_error_on_undeclared_values() -> None:
    cat = users_catalog()
    cat.add_stream("events")  # open: types known per value only
    q = compile_query("SELECT v FROM events WHERE v > 1", cat)
    assert q.process({"v": 2}) == [{"v": 2}]
    with pytest.raises(RuntimeTypeError):
        q.process({"v": "two"})


def test_cast_error() -> None:
    cat = users_catalog()
    cat.add_stream("events", {"v": STRING, "n": BIGINT})
    q = compile_query("SELECT CAST(v AS DECIMAL(5,2)) AS d FROM events", cat)
    assert q.process({"v": "1.5"}) == [{"d": Decimal("1.50")}]
    with pytest.raises(CastError):
        q.process({"v": "abc"})
