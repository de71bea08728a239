"""The generated output row of aggregates (:mod:`sql.codegen.fold`) against the general one and
DuckDB.

Hypothesis draws a GROUP BY query over the stream ``st`` of ``tests.unit.sql.support`` (one or
two keys, one to three aggregates — COUNT, SUM, MIN, MAX, AVG over BIGINT, DECIMAL and VARCHAR
with NULLs — an expression over aggregates, optional WHERE and HAVING, EMIT CHANGES or FINAL,
optionally a tumbling window or session on the record timestamp) and a list of records. The same
records go through the query compiled with the generated row function and with the general one
(:func:`sql.codegen.fold.general_row`): the rows of every record, the errors, the rows of
``finish()`` and the state (:meth:`CompiledQuery.dirty_state`) must be identical. EMIT FINAL
without a window must also give the rows DuckDB gives for the same query over the records.
"""

from __future__ import annotations

import os
from decimal import Decimal
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sql.codegen.fold as fold
from sql import Catalog, CompiledQuery, Retraction, SqlRuntimeError, compile_query
from tests.unit.sql.support import STREAM_COLUMNS, declarations, make_tables, same_rows

EXAMPLES = int(os.environ.get("SQL_FOLD_EXAMPLES", "200"))

KEYS = ["st.x", "st.z", "st.x % 2"]
AGGS = [
    "COUNT(*)",
    "COUNT(st.y)",
    "SUM(st.x)",
    "SUM(st.y)",
    "SUM(st.x * st.y)",
    "MIN(st.y)",
    "MAX(st.z)",
    "AVG(st.x)",
    "AVG(st.y)",
]
HAVING = ["COUNT(*) > 1", "SUM(st.x) IS NOT NULL", "MAX(st.y) > 0"]
WHERE = ["st.x IS NOT NULL", "st.y > 0", "st.z <> 'c'"]
WINDOWS = ["", "WINDOW TUMBLING(5s)", "WINDOW SESSION(2s)", "WINDOW SESSION(2s)"]
#: Records arrive out of order (their timestamps drawn) within this much: sessions merge.
SINK = "CREATE TABLE out WITH (topic='out', out_of_orderness='10s') AS "


@st.composite
def query(draw: st.DrawFn) -> tuple[str, bool, bool]:
    """(SELECT, windowed, EMIT FINAL)."""
    keys = draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=2, unique=True))
    aggs = draw(st.lists(st.sampled_from(AGGS), min_size=1, max_size=3, unique=True))
    cols = [f"{k} AS k{i}" for i, k in enumerate(keys)]
    cols += [f"{a} AS a{i}" for i, a in enumerate(aggs)]
    if aggs[0] != "MAX(st.z)" and draw(st.booleans()):
        cols.append(f"{aggs[0]} + COUNT(*) AS e")
    window = draw(st.sampled_from(WINDOWS))
    final = draw(st.booleans())
    where = draw(st.one_of(st.none(), st.sampled_from(WHERE)))
    having = draw(st.one_of(st.none(), st.sampled_from(HAVING)))
    sql = (
        f"SELECT {', '.join(cols)} FROM st"
        + (f" WHERE {where}" if where else "")
        + (f" {window}" if window else "")
        + f" GROUP BY {', '.join(keys)}"
        + (f" HAVING {having}" if having else "")
        + (" EMIT FINAL" if final else " EMIT CHANGES")
    )
    return sql, bool(window), final


def _mostly(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), values, values, values)


record = st.fixed_dictionaries(
    {
        "x": _mostly(st.integers(-2, 2)),
        "y": _mostly(st.sampled_from(["-1.00", "0.00", "1.50", "2.25"]).map(Decimal)),
        "z": _mostly(st.sampled_from(["a", "b", "c"])),
    }
)
#: A record and its timestamp (ms).
timed = st.tuples(record, st.integers(0, 12).map(lambda s: s * 1_000))


def _compile(sql: str) -> CompiledQuery:
    return compile_query(declarations() + SINK + sql, Catalog.of(dict(make_tables())))


def _run(q: CompiledQuery, records: list[tuple[dict[str, Any], int]]) -> list[Any]:
    """Per record its rows (retractions tagged) or its error, then finish() and the state."""
    out: list[Any] = []
    for rec, ts in records:
        try:
            rows = q.process(rec, timestamp=ts)
            out.append([_tagged(r) for r in rows])
        except SqlRuntimeError as err:
            out.append(("error", type(err).__name__, err.message, [_tagged(r) for r in err.rows]))
    out.append([_tagged(r) for r in q.finish()])
    out.append(q.dirty_state())
    return out


def _tagged(row: dict[str, Any]) -> Any:
    # repr: Decimal("1.50") and Decimal("1.5") are equal but not the same result.
    return (type(row) is Retraction, repr(dict(row)))


def _duckdb(sql: str, records: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    body = ", ".join(f"{c} {t}" for c, t in STREAM_COLUMNS)
    con.execute(f"CREATE TABLE st ({body})")
    if records:
        con.executemany(
            "INSERT INTO st VALUES (?, ?, ?)", [[r["x"], r["y"], r["z"]] for r in records]
        )
    return [tuple(r) for r in con.execute(sql.removesuffix(" EMIT FINAL")).fetchall()]


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(q=query(), records=st.lists(timed, max_size=25))
def test_generated_row_matches_the_general_one_and_duckdb(
    q: tuple[str, bool, bool],
    records: list[tuple[dict[str, Any], int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sql, windowed, final = q
    generated = _compile(sql)
    with monkeypatch.context() as m:
        m.setattr(fold, "row_function", fold.general_row)
        general = _compile(sql)
    ours = _run(generated, records)
    assert ours == _run(general, records), sql
    if final and not windowed and not any(isinstance(r, tuple) for r in ours[:-2]):
        again = _compile(sql)
        for rec, ts in records:
            again.process(rec, timestamp=ts)
        rows = [tuple(r.values()) for r in again.finish()]
        theirs = _duckdb(sql, [rec for rec, _ in records])
        assert _same_set(rows, theirs), (sql, rows, theirs)


def _same_set(ours: list[tuple[Any, ...]], theirs: list[tuple[Any, ...]]) -> bool:
    """Equal as multisets (row order differs between the engines; ``repr`` sorts by type)."""
    left = list(theirs)
    for row in ours:
        for i, other in enumerate(left):
            if same_rows([row], [other]):
                del left[i]
                break
        else:
            return False
    return not left


def test_source_is_straight_line_with_having_only_when_there_is_one() -> None:
    q = _compile("SELECT st.z, COUNT(*) AS n, SUM(st.y) AS s FROM st GROUP BY st.z EMIT CHANGES")
    agg = q.plan.aggregate
    assert agg is not None
    src = fold.row_source(agg.agg, agg.outputs, agg.names)
    assert "having" not in src
    assert "for " not in src
    assert "zip" not in src
    assert "accs[0].result(), accs[1].result()" in src
    q = _compile("SELECT st.z, COUNT(*) AS n FROM st GROUP BY st.z HAVING COUNT(*) > 1")
    agg = q.plan.aggregate
    assert agg is not None
    assert "having(env) is not True" in fold.row_source(agg.agg, agg.outputs, agg.names)
    out: list[Any] = []
    for z in ["a", "a", "b"]:
        out += q.process({"x": 1, "y": None, "z": z})
    # HAVING holds only from the second "a" on; "b" is never emitted.
    assert out == [{"z": "a", "n": 2}]


def test_outputs_and_names_must_pair() -> None:
    q = _compile("SELECT st.z, COUNT(*) AS n FROM st GROUP BY st.z")
    agg = q.plan.aggregate
    assert agg is not None
    with pytest.raises(ValueError, match="2 outputs for 1 names"):
        fold.row_function(agg.agg, agg.outputs, agg.names[:1])
