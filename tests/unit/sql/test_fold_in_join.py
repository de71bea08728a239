"""The IN- and NOT IN-into-join fold (:mod:`sql.plan.fold_in_join`) over hypothesis data: NULL probe
values, probe values without a row, NULLs in the table's columns, rows changed and deleted between
batches. Folded, the generated function and the closures must give identical outputs and dead
letters; those must equal our own unfolded plan's (the same query joined on ``st.x + 0``, which the
rule leaves alone: a maintained IN-set) and DuckDB's rows for every record.

The fold's cases — applied or not, and why — are the golden plans of
``tests/fixtures/sql/fold_in_join.sql``.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import sqlglot
from hypothesis import strategies as st

from agents.cache import CachedTable
from agents.codec import make_decoder, make_encoder
from agents.fused import FusedProcessor
from agents.process import BatchProcessor
from core.codec import loads_exact
from sql import Catalog, SqlTypeError, compile_query, parse_script
from sql.plan.fold_in_join import fold_in_into_join
from tests.support.codegen import Collect, codegen_examples, table_rows
from tests.support.rocks import Record
from tests.unit.sql.support import DuckMirror, declarations, make_tables, same_rows

#: The IN's WHERE over ``r``: comparisons with NULLs in the columns, OR, IS NULL, BETWEEN.
PREDS = [
    "",
    " WHERE s <> 'c'",
    " WHERE r2.s = 'a' OR r2.a IS NULL",
    " WHERE a > 0",
    " WHERE d BETWEEN 0 AND 2",
    " WHERE s IN ('a', 'b') AND NOT a < 0",
    " WHERE s IS NULL",
]
OTHER = [
    "",
    " AND st.y > 0",
    " AND r.a IS NOT NULL",
    " AND EXISTS (SELECT 1 FROM q WHERE q.k = st.x)",
]
JOINS = [
    "JOIN r ON r.id = st.x",
    "LEFT JOIN r ON r.id = st.x",
    "LEFT JOIN r ON st.x = r.id LEFT JOIN q ON q.k = r.a",
    "JOIN r ON st.x = r.id AND r.d IS NOT NULL",
    "JOIN r ON r.id = st.x LEFT JOIN q ON q.k = r.a",
]


@st.composite
def folded_query(draw: st.DrawFn) -> str:
    pred = draw(st.sampled_from(PREDS))
    alias = " r2" if "r2." in pred else draw(st.sampled_from(["", " r2"]))
    item = draw(st.sampled_from(["id", "r2.id"] if alias else ["id", "r.id"]))
    not_ = "NOT " if draw(st.booleans()) else ""  # folded over an INNER JOIN only
    in_ = f"st.x {not_}IN (SELECT {item} FROM r{alias}{pred})"
    where = in_ + draw(st.sampled_from(OTHER))
    if draw(st.booleans()):
        where = where.replace(in_, f"{in_} AND st.z IS NOT NULL")
    cols = "st.x, r.s, st.y, r.d"
    return f"SELECT {cols} FROM st {draw(st.sampled_from(JOINS))} WHERE {where}"


@st.composite
def stream_record(draw: st.DrawFn) -> bytes:
    x = draw(st.one_of(st.none(), st.integers(-4, 6)))  # NULL, and keys without a row
    y = draw(st.one_of(st.none(), st.sampled_from(["-1.00", "0.00", "1.50"])))
    z = draw(st.one_of(st.none(), st.sampled_from(["a", "b"])))
    text = orjson.dumps({"x": x, "y": y, "z": z})
    return text.replace(b'"y":"', b'"y":').replace(b'","z"', b',"z"')


def _processors(text: str, tables: dict[str, Any]) -> list[tuple[BatchProcessor, Any]]:
    columns = parse_script(text).declarations["st"].columns
    common: dict[str, Any] = dict(
        name="q", sink_topic="out", key_columns=(), dead_letter_topic="dlq"
    )
    ref_q = compile_query(text, dict(tables), typed_streams=True)
    out: list[tuple[BatchProcessor, Any]] = [
        (
            BatchProcessor(
                ref_q,
                make_decoder(columns),
                encode=make_encoder(ref_q.output_columns, ref_q.output_types),
                **common,
            ),
            ref_q,
        )
    ]
    cached = {n: CachedTable(t) for n, t in tables.items()}
    gen_q = compile_query(text, cached, typed_streams=True)
    out.append((FusedProcessor(gen_q, make_decoder(columns), columns=columns, **common), gen_q))
    return out


@codegen_examples(
    sql=folded_query(),
    r=table_rows("r"),
    q=table_rows("q"),
    changes=st.lists(
        st.tuples(st.integers(-3, 5), st.one_of(st.none(), st.sampled_from(["a", "c", None]))),
        max_size=4,
    ),
    batches=st.lists(st.lists(stream_record(), min_size=1, max_size=8), min_size=1, max_size=3),
)
def test_folded_in_matches_closures_and_duckdb(
    sql: str,
    r: list[dict[str, Any]],
    q: list[dict[str, Any]],
    changes: list[tuple[int, Any]],
    batches: list[list[bytes]],
) -> None:
    tables = make_tables({"r": r, "q": q})
    text = declarations() + sql
    unfolded = sql.replace("r.id = st.x", "r.id = st.x + 0").replace(
        "st.x = r.id", "st.x + 0 = r.id"
    )
    procs = _processors(text, tables) + _processors(declarations() + unfolded, tables)[:1]
    negated = " NOT IN (" in sql
    foldable = not (negated and "LEFT JOIN r " in sql)
    for i, (_, cq) in enumerate(procs):
        term = f"LookupJoin r: {'NOT ' if negated else ''}st.x IN"
        folded = term in cq.explain() and "IN folded" in cq.explain()
        assert folded == (i < 2 and foldable), cq.explain()
    columns = parse_script(text).declarations["st"].columns
    decode = make_decoder(columns)
    mirror = DuckMirror()
    offset = 0
    try:
        for n, values in enumerate(batches):
            if n:  # a table change between batches: a row deleted, its s changed, a new row
                key, s = changes[(n - 1) % len(changes)] if changes else (0, None)
                if s is None and key % 2:
                    tables["r"].put(key, None)
                else:
                    tables["r"].put_row({"id": key, "a": key - 1, "d": None, "s": s})
            records = [
                Record("st", 0, offset + i, 0, str(offset + i).encode(), v)
                for i, v in enumerate(values)
            ]
            offset += len(values)
            results = []
            for proc, _ in procs:
                c = Collect()
                proc.run(records, c)
                results.append((c.out, sorted(c.dead)))
            assert results[0] == results[1], sql
            assert results[0] == results[2], (sql, unfolded)
            out, dead = results[0]
            assert not dead, (sql, dead)
            by_key: dict[bytes, list[tuple[Any, ...]]] = {}
            for _, key_, value, _ in out:
                assert key_ is not None
                assert value is not None
                by_key.setdefault(key_, []).append(tuple(loads_exact(value).values()))
            mirror.load(tables)
            for rec in records:
                theirs = [tuple(row) for row in mirror.run(sql, decode(rec.value))]
                ours = by_key.get(str(rec.offset).encode(), [])
                assert same_rows(ours, theirs), (sql, rec.value, ours, theirs)
    finally:
        for _, cq in procs:
            cq.close()
        mirror.con.close()


def test_the_rule_is_pure_and_errors_keep_their_position() -> None:
    """The rule rewrites a copy (the input SELECT is unchanged), and an error in the folded
    predicate still points at the text the user wrote."""
    catalog = Catalog.of(dict(make_tables()))
    compile_query(declarations() + "SELECT st.x FROM st", catalog).close()  # declares st, r, q
    text = (
        "SELECT st.x FROM st JOIN r ON r.id = st.x WHERE st.x IN (SELECT id FROM r WHERE s = 'a')"
    )
    select = sqlglot.parse_one(text, dialect="duckdb")
    assert isinstance(select, sqlglot.exp.Select)
    before = select.sql()
    out, lines = fold_in_into_join(select, catalog)
    assert select.sql() == before
    assert out.args["where"].this.sql() == "r.s = 'a'"
    assert lines == [
        "IN folded into InnerLookupJoin r: st.x IN (SELECT id FROM r WHERE s = 'a')"
        " → r.s = 'a' on the joined row (one probe of r, not two)"
    ]
    bad = "SELECT st.x FROM st JOIN r ON r.id = st.x\nWHERE st.x IN (SELECT id FROM r WHERE s > 1)"
    with pytest.raises(SqlTypeError) as err:
        compile_query(declarations() + bad, dict(make_tables()))
    assert "line " in str(err.value)
    assert err.value.line == declarations().count("\n") + 2
