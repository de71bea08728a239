"""The WINDOW clause: both spellings give the same plan; bad clauses fail at the right place."""

from __future__ import annotations

import pytest

from sql import BindError, Catalog, ParseError, SqlCompileError, UnsupportedError, compile_query
from sql.parse import parse_script
from tests.support.sql_errors import where

DECL = "CREATE STREAM ev (k VARCHAR, ts BIGINT, v BIGINT) WITH (topic='ev', timestamp='ts');\n"


def explain(query: str) -> str:
    q = compile_query(DECL + query, Catalog())
    try:
        return q.explain()
    finally:
        q.close()


SAME = [
    ("TUMBLING (SIZE 5 SECONDS)", "TUMBLING(5s)"),
    ("TUMBLING (SIZE 5000 MILLISECONDS)", "TUMBLING(INTERVAL '5' SECOND)"),
    ("TUMBLING (SIZE 1 MINUTE, GRACE PERIOD 1 SECOND)", "TUMBLING(1m, GRACE 1s)"),
    ("TUMBLING (SIZE 2 HOURS)", "TUMBLING(INTERVAL '2 hours')"),
    ("HOPPING (SIZE 10 SECONDS, ADVANCE BY 2 SECONDS)", "HOPPING(10s, 2s)"),
    ("HOPPING (ADVANCE BY 2 SECONDS, SIZE 10 SECONDS)", "HOPPING(10 s, 2000 ms)"),
    ("SESSION (30 SECONDS)", "SESSION(30s)"),
    ("SESSION (30 SECONDS, GRACE PERIOD 1 SECOND)", "SESSION(30s, GRACE PERIOD 1s)"),
    ("TUMBLING (SIZE 1 SECOND)", "TUMBLING(INTERVAL '1' SECOND, ts)"),
    ("TUMBLING (SIZE 1 DAY, RETENTION 2 DAYS)", "TUMBLING(1d, RETENTION 2d)"),
]


@pytest.mark.parametrize(("ksql", "compact"), SAME)
def test_both_syntaxes_compile_to_the_same_plan(ksql: str, compact: str) -> None:
    a = explain(f"SELECT k, COUNT(*) AS n FROM ev WINDOW {ksql} GROUP BY k EMIT FINAL")
    b = explain(f"SELECT k, COUNT(*) AS n FROM ev GROUP BY k WINDOW {compact} EMIT FINAL")
    assert a == b
    assert "Window " in a


@pytest.mark.parametrize(
    "placement",
    [
        "SELECT k, COUNT(*) FROM ev WINDOW TUMBLING(5s) WHERE v > 1 GROUP BY k HAVING SUM(v) > 1",
        "SELECT k, COUNT(*) FROM ev WHERE v > 1 WINDOW TUMBLING(5s) GROUP BY k HAVING SUM(v) > 1",
        "SELECT k, COUNT(*) FROM ev WHERE v > 1 GROUP BY k WINDOW TUMBLING(5s) HAVING SUM(v) > 1",
        "SELECT k, COUNT(*) FROM ev WHERE v > 1 GROUP BY k HAVING SUM(v) > 1 WINDOW TUMBLING(5s)",
    ],
)
def test_window_placements(placement: str) -> None:
    base = "SELECT k, COUNT(*) FROM ev WHERE v > 1 GROUP BY k HAVING SUM(v) > 1"
    assert explain(placement) == explain(base.replace(" GROUP", " WINDOW TUMBLING(5s) GROUP"))


def test_the_window_clause_is_cut_out_keeping_offsets() -> None:
    sql = (
        DECL
        + "CREATE TABLE t AS SELECT k, COUNT(*) AS n\n"
        + "FROM ev WINDOW TUMBLING(5s)\nWHERE nope > 1 GROUP BY k"
    )
    with pytest.raises(BindError) as info:
        compile_query(sql, Catalog())
    assert (info.value.line, info.value.column) == where(sql, "nope")
    script = parse_script(DECL + "SELECT k FROM ev WINDOW SESSION (30 SECONDS) GROUP BY k")
    assert script.window is not None
    assert script.window.gap_ms == 30_000


BAD = [
    ("WINDOW TUMBLING (SIZE 5 PARSECS)", ParseError, "PARSECS", "unknown duration unit"),
    ("WINDOW TUMBLE (5s)", ParseError, "TUMBLE", "unknown window type"),
    ("WINDOW HOPPING (10s)", ParseError, "HOPPING", "needs ADVANCE BY"),
    ("WINDOW HOPPING (2s, 10s)", ParseError, "10s", "must not exceed SIZE"),
    ("WINDOW TUMBLING (0s)", ParseError, "0s", "must be positive"),
    ("WINDOW TUMBLING (5)", ParseError, ")", "expected a unit"),
    ("WINDOW TUMBLING (5s, 6s)", ParseError, "6s", "unexpected duration"),
    ("WINDOW SESSION (SIZE 5s)", ParseError, "SIZE", "unexpected SIZE"),
    ("WINDOW TUMBLING (SIZE 1.5 MILLISECONDS)", ParseError, "1.5", "whole number"),
    ("WINDOW TUMBLING (5s", ParseError, "GROUP", "expected , or )"),
    ("WINDOW TUMBLING 5s", ParseError, "5s", "expected ("),
    ("WINDOW TUMBLING (5s, tss)", BindError, "tss", "unknown column 'tss'"),
]


@pytest.mark.parametrize(("clause", "cls", "culprit", "message"), BAD)
def test_bad_window_clauses_point_at_the_culprit(
    clause: str, cls: type[SqlCompileError], culprit: str, message: str
) -> None:
    sql = DECL + f"SELECT k,\n  COUNT(*) AS n FROM ev\n  {clause} GROUP BY k"
    with pytest.raises(cls) as info:
        compile_query(sql, Catalog())
    err = info.value
    assert message in err.reason
    assert (err.line, err.column) == where(
        sql, culprit, nth=sql.count(culprit) - 1 if culprit == ")" else 0
    )
    assert err.excerpt.splitlines()[0].strip() == f"{clause} GROUP BY k"


def test_misplaced_or_repeated_window_clauses() -> None:
    sql = DECL + "SELECT k, COUNT(*) FROM ev WINDOW TUMBLING(5s) GROUP BY k WINDOW TUMBLING(5s)"
    with pytest.raises(ParseError, match="only one WINDOW clause") as info:
        compile_query(sql, Catalog())
    assert (info.value.line, info.value.column) == where(sql, "WINDOW", nth=1)
    with pytest.raises(UnsupportedError, match="needs GROUP BY or an aggregate") as uinfo:
        compile_query(DECL + "SELECT k, v FROM ev WINDOW TUMBLING(5s)", Catalog())
    assert uinfo.value.line == 2


def test_bad_time_options() -> None:
    q = (
        "CREATE TABLE t WITH (topic='t', {opt}) AS "
        "SELECT k, COUNT(*) AS n FROM ev WINDOW TUMBLING(5s) GROUP BY k"
    )
    with pytest.raises(BindError, match="late='never'"):
        compile_query(DECL + q.format(opt="late='never'"), Catalog())
    with pytest.raises(BindError, match="out_of_orderness='soon'"):
        compile_query(DECL + q.format(opt="out_of_orderness='soon'"), Catalog())


def test_group_by_missing_from_the_select_list_of_a_sink() -> None:
    sql = DECL + "CREATE TABLE t WITH (topic='t') AS SELECT COUNT(*) AS n FROM ev GROUP BY k"
    with pytest.raises(BindError, match="GROUP BY k must also be in the SELECT list") as info:
        compile_query(sql, Catalog())
    assert (info.value.line, info.value.column) == where(sql, "k", nth=sql.count("k") - 1)
    # a bare SELECT has no sink to key: it reuses the source key
    assert (
        compile_query(DECL + "SELECT COUNT(*) AS n FROM ev GROUP BY k", Catalog()).key_columns == ()
    )


def test_window_columns_cannot_feed_the_grouping() -> None:
    for query, culprit, clause in [
        (
            "SELECT k, COUNT(*) FROM ev WINDOW TUMBLING(5s) GROUP BY k, window_start",
            "window_start",
            "GROUP BY",
        ),
        ("SELECT k, SUM(window_end) FROM ev WINDOW TUMBLING(5s) GROUP BY k", "window_end", "SUM()"),
    ]:
        sql = DECL + query
        with pytest.raises(BindError, match=f"cannot be used in {clause}") as info:
            compile_query(sql, Catalog())
        assert (info.value.line, info.value.column) == where(sql, culprit)
