"""Parse errors a person can act on, and limits that keep every input a typed error."""

from __future__ import annotations

import pytest

from sql import (
    Catalog,
    ParseError,
    ScalarSubqueryError,
    SqlCompileError,
    SqlTypeError,
    compile_query,
)
from sql.parse import MAX_EXPRESSION_DEPTH, MAX_NESTING, MAX_SQL_CHARS
from tests.support.sql_errors import DECLS, compile_err, users_catalog, where


@pytest.mark.parametrize(
    ("query", "typo", "keyword"),
    [
        ("SELECT user_id FROM orders\nWHRE amount > 1", "WHRE", "WHERE"),
        ("SELECT user_id FORM orders", "FORM", "FROM"),
        ("SELEC user_id FROM orders", "SELEC", "SELECT"),
        ("SELECT user_id, COUNT(*) AS n FROM orders GROUP BY user_id HAVNG COUNT(*) > 1", "HAVNG",
         "HAVING"),
    ],
)  # fmt: skip
def test_keyword_typo_is_named_at_its_own_position(query: str, typo: str, keyword: str) -> None:
    err, sql = compile_err(query, ParseError)
    assert (err.line, err.column) == where(sql, typo)
    assert err.suggestion == keyword
    assert f"unexpected {typo!r}" in str(err)
    assert f"did you mean {keyword!r}" in str(err)


def test_declared_names_are_not_taken_for_typos() -> None:
    """``orders`` is close to ORDER, but it is the declared stream."""
    err, sql = compile_err("SELECT user_id FROM orders GROUP user_id", ParseError)
    assert err.suggestion is None
    assert (err.line, err.column) == where(sql, "user_id", nth=2)
    assert "unexpected 'user_id'" in err.reason


def test_unbalanced_parentheses_point_at_the_parenthesis() -> None:
    err, sql = compile_err(
        "SELECT user_id FROM orders\nWHERE (amount > 1 AND user_id = 2", ParseError
    )
    assert (err.line, err.column) == where(sql, "(amount")
    assert "never closed" in err.reason
    err, sql = compile_err("SELECT user_id FROM orders WHERE amount > 1)", ParseError)
    assert (err.line, err.column) == where(sql, ")", nth=sql.count(")") - 1)
    assert "closes no" in err.reason


def test_unterminated_string() -> None:
    err, sql = compile_err("SELECT user_id FROM orders WHERE note = 'abc", ParseError)
    assert (err.line, err.column) == where(sql, "'abc")
    assert "unterminated" in err.reason


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x1b", "\x7f"])
def test_control_characters_are_rejected_where_they_are(char: str) -> None:
    err, sql = compile_err(f"SELECT user_id FROM orders\nWHERE note = 'a{char}b'", ParseError)
    assert (err.line, err.column) == where(sql, char)
    assert f"U+{ord(char):04X}" in err.reason


def test_text_over_the_size_limit_is_rejected_before_parsing() -> None:
    query = "SELECT user_id FROM orders WHERE note = '" + "x" * MAX_SQL_CHARS + "'"
    err, _ = compile_err(query, ParseError)
    assert f"limit is {MAX_SQL_CHARS:,}" in err.reason
    assert err.line >= 1
    assert err.column >= 1


def test_nesting_over_the_limit_is_rejected_at_the_parenthesis() -> None:
    n = MAX_NESTING + 1
    err, sql = compile_err(f"SELECT {'(' * n}1{')' * n} AS d FROM orders", ParseError)
    assert (err.line, err.column) == where(sql, "(1", nth=1)  # the 41st; nth=0 is DECIMAL(10
    assert f"deeper than {MAX_NESTING}" in err.reason
    depth = MAX_NESTING // 2
    q = compile_query(
        DECLS + f"SELECT {'(' * depth}user_id{')' * depth} AS d FROM orders", users_catalog()
    )
    assert q.process({"user_id": 3}) == [{"d": 3}]


def test_expression_depth_over_the_limit() -> None:
    terms = " + 1" * (MAX_EXPRESSION_DEPTH + 5)
    err, _ = compile_err(f"SELECT user_id{terms} AS d FROM orders", ParseError)
    assert f"deeper than {MAX_EXPRESSION_DEPTH}" in err.reason
    err, _ = compile_err(f"SELECT user_id FROM orders WHERE {'NOT ' * 400}TRUE", ParseError)
    assert err.line >= 1


def test_long_and_or_chains_compile() -> None:
    """A chain of one connective is one level: generated filters of thousands of terms run."""
    ors = " OR ".join(f"user_id = {i}" for i in range(2000))
    q = compile_query(DECLS + f"SELECT user_id FROM orders WHERE {ors}", users_catalog())
    assert q.process({"user_id": 1999}) == [{"user_id": 1999}]
    assert q.process({"user_id": 2000}) == []


def test_a_20000_item_in_list_compiles_and_answers() -> None:
    items = ", ".join(str(i) for i in range(20_000))
    q = compile_query(
        DECLS + f"SELECT user_id FROM orders WHERE user_id IN ({items})", users_catalog()
    )
    assert q.process({"user_id": 19_999}) == [{"user_id": 19_999}]
    assert q.process({"user_id": 20_000}) == []


def test_nested_case_compiles_each_branch_once() -> None:
    """Nested CASEs used to compile each THEN twice per level (2^n): 60 levels now compile."""
    n = 60
    query = f"SELECT {'CASE WHEN user_id > 0 THEN ' * n}user_id{' END' * n} AS c FROM orders"
    q = compile_query(DECLS + query, users_catalog())
    assert q.process({"user_id": 4}) == [{"c": 4}]


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("SELECT COUNT(DISTINCT) AS n FROM orders", "COUNT"),
        ("SELECT user_id, INTERVAL '\u2019' HOUR AS i FROM orders", "'\u2019'"),
        ("SELECT user_id, INTERVAL 'x1' DAY AS i FROM orders", "'x1'"),
    ],
)
def test_inputs_that_raised_python_errors(query: str, needle: str) -> None:
    sql = DECLS + query
    with pytest.raises(SqlCompileError) as info:
        compile_query(sql, users_catalog())
    assert info.value.line == where(sql, needle)[0]
    assert info.value.column >= 1


def test_odd_interval_literal_is_a_type_error() -> None:
    err, sql = compile_err("SELECT user_id, INTERVAL 'soon' HOUR AS i FROM orders", SqlTypeError)
    assert "invalid INTERVAL quantity 'soon'" in err.reason
    assert err.line == where(sql, "'soon'")[0]


def test_empty_and_blank_scripts() -> None:
    for sql in ("", "   ", ";;", "-- only a comment"):
        with pytest.raises(SqlCompileError) as info:
            compile_query(sql, Catalog())
        assert info.value.line >= 1


def test_scalar_subquery_error_names_the_subquery() -> None:
    """The dead-letter reason says which subquery found several rows, by line and column."""
    query = "SELECT user_id,\n  (SELECT name FROM users WHERE score = 3) AS n\nFROM orders"
    sql = DECLS + query
    q = compile_query(sql, users_catalog())
    assert "may return several rows" not in q.explain()  # uncorrelated: no warning
    with pytest.raises(ScalarSubqueryError) as info:
        q.process({"user_id": 1})
    line, column = where(sql, "name FROM users")
    text = str(info.value)
    assert f"subquery #1 at line {line}, column {column}" in text
    assert "SELECT name FROM users WHERE score = 3" in text
    assert info.value.fields["subquery"] == 1


def test_correlated_scalar_off_the_key_warns_and_fails_naming_itself() -> None:
    users = users_catalog()
    sql = DECLS + (
        "SELECT user_id, (SELECT name FROM users u WHERE u.score = o.user_id) AS n FROM orders o"
    )
    q = compile_query(sql, users)
    assert "!! may return several rows: correlated on u.score = o.user_id, not on the key id" in (
        q.explain()
    )
    assert q.process({"user_id": 4}) == [{"user_id": 4, "n": None}]
    with pytest.raises(ScalarSubqueryError) as info:
        q.process({"user_id": 3})  # ann and bob both have score 3
    assert "subquery #1 at line 4" in str(info.value)


def test_unterminated_comment_and_string_in_a_long_text() -> None:
    err, sql = compile_err("SELECT user_id FROM orders /* never closed", ParseError)
    assert (err.line, err.column) == where(sql, "/*")
    assert "unterminated /* comment" in err.reason
    items = ", ".join(f"'{i}'" for i in range(20_000))
    err, sql = compile_err(
        f"SELECT user_id FROM orders WHERE note IN ({items}) OR note = 'x", ParseError
    )
    assert (err.line, err.column) == where(sql, "'x")
