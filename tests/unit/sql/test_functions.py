"""The function registry: one description per function drives binding, compilation and docs."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from sql import (
    BindError,
    Catalog,
    RuntimeTypeError,
    SqlCompileError,
    SqlTypeError,
    compile_query,
)
from sql.functions import REGISTRY, Function, docs_table, functions, register
from sql.functions.registry import BY_NODE, STRING_ARG
from sql.types import BIGINT, STRING
from tests.support.sql_errors import DECLS, compile_err, users_catalog, where

DOCS = Path(__file__).resolve().parents[3] / "docs" / "SQL.md"


def _docs_rows() -> list[str]:
    text = DOCS.read_text()
    m = re.search(r"<!-- functions:begin -->\n(.*?)<!-- functions:end -->", text, re.S)
    assert m is not None, "docs/SQL.md lost its functions markers"
    return m.group(1).strip().splitlines()


def test_docs_table_is_the_registry() -> None:
    assert _docs_rows() == docs_table().splitlines(), "run: python -m sql.functions"


def test_docs_list_exactly_the_registered_functions() -> None:
    documented = {re.match(r"\| `(\w+)\(", r).group(1) for r in _docs_rows()[2:]}  # type: ignore[union-attr]
    assert documented == {f.name for f in functions()}


@pytest.mark.parametrize(
    ("query", "culprit", "want", "cast"),
    [
        (
            "SELECT UPPER(user_id) AS u FROM orders",
            "user_id)",
            "VARCHAR",
            "CAST(user_id AS VARCHAR)",
        ),
        (
            "SELECT LENGTH(user_id) AS n FROM orders",
            "user_id)",
            "VARCHAR",
            "CAST(user_id AS VARCHAR)",
        ),
        ("SELECT ABS(note) AS a FROM orders", "note)", "a number", "CAST(note AS DECIMAL)"),
        ("SELECT ROUND(amount, note) AS r FROM orders", "note)", "BIGINT", "CAST(note AS BIGINT)"),
        ("SELECT SUM(note) AS s FROM orders", "note)", "a number", "CAST(note AS DECIMAL)"),
        ("SELECT IF(user_id, 1, 2) AS i FROM orders", "user_id,", "BOOLEAN", None),
    ],
)
def test_argument_types_are_checked_when_compiling(
    query: str, culprit: str, want: str, cast: str | None
) -> None:
    err, sql = compile_err(query, SqlTypeError)
    assert (err.line, err.column) == where(sql, culprit)
    assert f"expects {want} as argument" in err.reason
    if cast is not None:
        assert cast in err.reason


def test_like_operands_must_be_strings() -> None:
    err, sql = compile_err("SELECT note FROM orders\nWHERE note LIKE 10", SqlTypeError)
    assert (err.line, err.column) == where(sql, "10", nth=1)  # the first is in DECIMAL(10,2)
    assert "CAST(10 AS VARCHAR)" in err.reason
    err, sql = compile_err("SELECT note FROM orders WHERE user_id LIKE 'a%'", SqlTypeError)
    assert (err.line, err.column) == where(sql, "user_id LIKE")


@pytest.mark.parametrize(
    ("query", "needle", "message"),
    [
        ("SELECT UPPER(note,\n  note) AS u FROM orders", "note)", "UPPER takes 1 argument, got 2"),
        ("SELECT IF(note > 'a') AS u FROM orders", "IF", "IF takes 2 to 3 arguments"),
        ("SELECT ROUND() AS r FROM orders", "ROUND", "ROUND takes 1 to 2 arguments"),
        ("SELECT COALESCE() AS c FROM orders", "COALESCE", "COALESCE takes at least 1"),
        ("SELECT COUNT(DISTINCT) AS c FROM orders", "COUNT", "COUNT(DISTINCT) takes * or 1"),
        ("SELECT SUM(*) AS c FROM orders", "SUM", "SUM takes 1 argument"),
    ],
)
def test_arity_is_checked(query: str, needle: str, message: str) -> None:
    sql = DECLS + query
    with pytest.raises(SqlCompileError) as info:
        compile_query(sql, users_catalog())
    assert message in info.value.reason
    assert info.value.line == where(sql, needle)[0]
    assert info.value.column > 0


def test_values_of_unknown_type_fail_per_record_with_a_typed_error() -> None:
    cat = Catalog()
    cat.add_stream("events")
    q = compile_query(
        "SELECT UPPER(s) AS u, ABS(n) AS a, LENGTH(s) AS l FROM events WHERE s LIKE '%'", cat
    )
    assert q.process({"s": "ab", "n": -2}) == [{"u": "AB", "a": 2, "l": 2}]
    assert q.process({"s": None, "n": None}) == []  # NULL LIKE is not TRUE
    for bad in ({"s": 7, "n": 1}, {"s": "x", "n": "y"}):
        with pytest.raises(RuntimeTypeError) as info:
            q.process(bad)
        assert "expects" in str(info.value)


def test_null_policies() -> None:
    cat = Catalog()
    cat.add_stream("events", {"s": STRING, "n": BIGINT})
    q = compile_query(
        "SELECT UPPER(s) AS u, COALESCE(s, 'd') AS c, NULLIF(n, 1) AS z, IF(n > 0, 'p') AS i,"
        " ROUND(n, 2) AS r FROM events",
        cat,
    )
    assert q.process({"s": None, "n": None}) == [
        {"u": None, "c": "d", "z": None, "i": None, "r": None}
    ]
    assert q.process({"s": "a", "n": 1}) == [{"u": "A", "c": "a", "z": None, "i": "p", "r": 1}]


def test_round_of_huge_precision_is_a_record_error_not_a_crash() -> None:
    cat = Catalog()
    cat.add_stream("events", {"n": STRING})
    q = compile_query("SELECT ROUND(CAST(n AS DECIMAL(10,2)), 100000000) AS r FROM events", cat)
    with pytest.raises(RuntimeTypeError) as info:
        q.process({"n": "1.5"})
    assert "ROUND failed" in str(info.value)


def test_adding_a_function_is_one_registration() -> None:
    """A function registered once is callable, type-checked and documented."""
    fn = register(
        Function(
            "REVERSE_TEST",
            (STRING_ARG,),
            STRING,
            "the characters backwards",
            "REVERSE_TEST(s)",
            impl=lambda s: s[::-1],
        )
    )
    try:
        cat = Catalog()
        cat.add_stream("events", {"s": STRING, "n": BIGINT})
        q = compile_query("SELECT REVERSE_TEST(s) AS r FROM events", cat)
        assert q.process({"s": "abc"}) == [{"r": "cba"}]
        with pytest.raises(SqlTypeError):
            compile_query("SELECT REVERSE_TEST(n) AS r FROM events", cat)
        assert "`REVERSE_TEST(s)`" in docs_table()
        with pytest.raises(BindError) as info:
            compile_query("SELECT REVERSE_TES(s) AS r FROM events", cat)
        assert info.value.suggestion == "REVERSE_TEST"
    finally:
        del REGISTRY[fn.name]
    assert fn not in BY_NODE.values()


def test_constant_arguments_fold() -> None:
    q = compile_query(
        DECLS + "SELECT UPPER('a') AS u, ROUND(2.345, 2) AS r FROM orders", users_catalog()
    )
    assert q.process({"user_id": 1}) == [{"u": "A", "r": Decimal("2.35")}]
