"""The generated batch functions (:mod:`sql.codegen`) against the closures and DuckDB.

Hypothesis draws a stateless query over the shared schema (``tests.unit.sql.support``): a
stream ``st`` with key-lookup joins on ``r`` and ``q`` (inner or LEFT, on a column or an
expression), WHERE and SELECT expressions mixing NULLs, BIGINT and DECIMAL arithmetic,
comparisons, AND/OR/NOT, IS [NOT] NULL, BETWEEN, IN lists, CASE, functions and subqueries (the
last three are called as closures from the generated code), and a batch of JSON records, some
of which cannot be read (not JSON, a string in a BIGINT column, a DECIMAL too wide for its
precision) or fail in the query (division by zero). The same batch goes through
:class:`agents.process.BatchProcessor` (the closures), :class:`agents.fused.FusedProcessor` (the
generated function, per-record lookups and one ``get_many`` per batch): outputs — the encoded
bytes, keys, partitions — and dead letters with their reasons must be identical. Every record
that yields no dead letter must also give the rows DuckDB gives for the same query over it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from hypothesis import strategies as st

from agents.cache import CachedTable
from agents.codec import make_decoder, make_encoder
from agents.fused import FusedProcessor
from agents.process import BatchProcessor
from core.codec import loads_exact
from sql import compile_query, parse_script
from tests.support.codegen import (
    Test,
    codegen_examples,
    decs,
    ints,
    run_collected,
    strs,
    table_decs,
    table_rows,
)
from tests.support.rocks import Record
from tests.unit.sql.support import (
    DuckMirror,
    declarations,
    make_tables,
    same_rows,
)

NUM = ["st.x", "st.y", "r.a", "r.d", "q.a", "q.d", "r.id", "1", "2.50", "0", "NULL"]
STR = ["st.z", "r.s", "'a'", "'b'", "NULL"]
CMP = ["=", "<>", "<", "<=", ">", ">="]


@st.composite
def num(draw: st.DrawFn, depth: int = 0, closures: bool = True) -> str:
    """``closures``: CASE and functions too (the generated code calls their closures)."""
    kinds = ["leaf", "leaf", "leaf", "arith", "case", "fn", "sub"] if depth < 2 else ["leaf"]
    if not closures:
        kinds = [k for k in kinds if k not in ("case", "fn")]
    kind = draw(st.sampled_from(kinds))
    if kind == "leaf":
        return draw(st.sampled_from(NUM))
    if kind == "arith":
        op = draw(st.sampled_from(["+", "-", "*", "/", "%"]))
        return f"({draw(num(depth + 1, closures))} {op} {draw(num(depth + 1, closures))})"
    if kind == "sub":  # a scalar subquery by key, written inline
        where = draw(st.sampled_from(["", " AND q2.a IS NOT NULL", " AND q2.d > st.y"]))
        return f"(SELECT q2.a FROM q q2 WHERE q2.k = st.x{where})"
    if kind == "case":
        return f"(CASE WHEN {draw(pred(depth + 1))} THEN {draw(num(depth + 1))} ELSE 0 END)"
    return f"COALESCE({draw(num(depth + 1))}, 7)"


#: Subqueries: by key (written inline; the third calls the closure of its ON term that reads
#: r), then over a maintained IN-set.
EXISTS = [
    "EXISTS (SELECT 1 FROM q q2 WHERE q2.k = st.x)",
    "EXISTS (SELECT q2.a / 0 FROM q q2 WHERE q2.k = st.x AND q2.d < 1)",
    "NOT EXISTS (SELECT 1 FROM q q2 WHERE q2.k = st.x + 1 AND q2.a = r.a)",
    "st.x IN (SELECT r2.a FROM r r2)",
    "st.y NOT IN (SELECT r2.d FROM r r2 WHERE r2.s <> 'c')",
]


@st.composite
def pred(draw: st.DrawFn, depth: int = 0, closures: bool = True) -> str:
    """``closures``: IN lists and subqueries not by key too (called as closures)."""
    kinds = ["cmp", "cmp", "cmp", "str", "null", "between", "in"]
    if depth == 0:  # connectives at the top, where their result shows
        kinds = ["cmp", "and", "and", "or", "or", "not", "null", "between", "in", "exists"]
    elif depth < 2:
        kinds += ["and", "or", "not"]
    if not closures:
        kinds = [k for k in kinds if k != "in"]
    kind = draw(st.sampled_from(kinds))
    if kind == "cmp":  # mostly of plain values: often equal, so each operator shows
        a, b = (
            draw(st.sampled_from(NUM))
            if draw(st.integers(0, 2))
            else draw(num(depth + 1, closures))
            for _ in "ab"
        )
        return f"{a} {draw(st.sampled_from(CMP))} {b}"
    if kind == "str":
        a, b = draw(st.sampled_from(STR)), draw(st.sampled_from(STR))
        return f"{a} {draw(st.sampled_from(CMP))} {b}"
    if kind == "null":
        return f"{draw(num(depth + 1, closures))} IS {draw(st.sampled_from(['NULL', 'NOT NULL']))}"
    if kind == "between":
        x, lo, hi = (draw(num(depth + 1, closures)) for _ in "xyz")
        return f"{x} BETWEEN {lo} AND {hi}"
    if kind == "in":
        return f"{draw(st.sampled_from(NUM[:7]))} IN (1, 2.50, NULL, -1)"
    if kind == "exists":
        return draw(st.sampled_from(EXISTS if closures else EXISTS[:2]))
    if kind == "not":
        return f"NOT ({draw(pred(depth + 1, closures))})"
    parts = draw(st.lists(pred(depth + 1, closures), min_size=2, max_size=3))
    return "(" + f" {kind.upper()} ".join(parts) + ")"


JOIN_R = ["JOIN r ON r.id = st.x", "LEFT JOIN r ON r.id = st.x", "LEFT JOIN r ON r.id = st.x + 1"]
JOIN_Q = ["JOIN q ON q.k = st.x", "LEFT JOIN q ON q.k = r.a", "LEFT JOIN q ON q.k = st.x"]


@st.composite
def query(draw: st.DrawFn, closures: bool = True) -> str:
    items = draw(st.lists(st.one_of(num(0, closures), pred(0, closures)), min_size=1, max_size=3))
    cols = ", ".join(["st.x", *(f"{e} AS e{i}" for i, e in enumerate(items))])
    where = draw(
        st.one_of(st.just(""), st.just(""), pred(0, closures).map(lambda p: f" WHERE {p}"))
    )
    joins = f"{draw(st.sampled_from(JOIN_R))} {draw(st.sampled_from(JOIN_Q))}"
    return f"SELECT {cols} FROM st {joins}{where}"


#: Records the struct decoder does not accept as they are: converted or refused by the dict
#: decoder (lenient casts, 64-bit overflow, non-finite or too wide decimals, a document nested
#: too deep), and ones it reads itself (a repeated key, unknown nested fields, a rounded scale).
ODD_RECORDS = [
    b'{"x": "2", "y": "1.5", "z": 5}',
    b'{"x": 1.0, "y": 2, "z": true}',
    b'{"x": true, "y": "  2.50 ", "z": "b"}',
    b'{"x": 99999999999999999999, "y": 1.5}',
    b'{"x": 1, "y": "NaN"}',
    b'{"x": 1, "y": 1e400}',
    b'{"x": 1, "y": 1.005, "z": "a"}',
    b'{"x": 1, "x": 2, "w": [[{"x": 3}]], "z": "c"}',
    b'{"w": ' + b"[" * 300 + b"]" * 300 + b', "x": 1}',
    b'"just a string"',
    b"{}",
    b'{"x": 1, "name": "\xff\xfe"}',  # invalid UTF-8 in an undeclared field: not JSON
]


@st.composite
def record(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 23))
    if kind == 0:
        return b"not json"
    if kind == 1:
        return b'{"x": "abc", "y": 1.5}'  # not a BIGINT: CastError
    if kind == 2:
        return b'{"x": 1, "y": 123456.5}'  # beyond DECIMAL(6,2): NumericOverflowError
    if kind == 3:  # what the typed struct decoder leaves to the dict decoder (agents.structdecode)
        return draw(st.sampled_from(ODD_RECORDS))
    value = {"x": draw(ints), "y": draw(decs), "z": draw(strs)}
    text = orjson.dumps(value, default=str)
    return text.replace(b'"y":"', b'"y":').replace(b'","z"', b',"z"')  # y as a JSON number


@st.composite
def table_changes(draw: st.DrawFn) -> list[tuple[str, int, dict[str, Any] | None]]:
    """Rows replaced, added or deleted between two batches (None: a delete); now and then a
    DECIMAL no read can convert (:data:`UNREADABLE`: the record's error where it is read)."""
    out: list[tuple[str, int, dict[str, Any] | None]] = []
    d = st.one_of(table_decs, table_decs, table_decs, st.just(UNREADABLE))
    for _ in range(draw(st.integers(0, 4))):
        name, k = draw(st.sampled_from(["r", "q"])), draw(st.integers(-3, 4))
        if draw(st.integers(0, 3)) == 0:
            out.append((name, k, None))
        elif name == "r":
            row = {"id": k, "a": draw(ints), "d": draw(d), "s": draw(strs)}
            out.append((name, k, row))
        else:
            out.append((name, k, {"k": k, "a": draw(ints), "d": draw(d)}))
    return out


UNREADABLE = "oops"


#: The generated function's variants: (one get_many per batch, the stream as typed structs
#: with the tables behind the agents' row cache, projected lookups).
VARIANTS = ((False, False, False), (True, False, True), (False, True, True), (False, True, False))


def check_against_closures_and_duckdb(
    sql: str,
    r: list[dict[str, Any]],
    q: list[dict[str, Any]],
    values: list[bytes],
    changes: list[tuple[str, int, dict[str, Any] | None]],
    *,
    projected: bool = False,
) -> None:
    """The batch through the closures and each variant of the generated function; then the
    tables change (the variants' maps and caches must follow) and the batch runs again; every
    record that is not a dead letter must give DuckDB's rows over the final tables.
    ``projected``: every variant with maps must have some (the query calls no closure)."""
    tables = make_tables({"r": r, "q": q})
    text = declarations() + sql
    columns = parse_script(text).declarations["st"].columns
    common: dict[str, Any] = dict(
        name="q", sink_topic="out", key_columns=(), dead_letter_topic="dlq"
    )
    records = [Record("st", 0, i, 0, str(i).encode(), v) for i, v in enumerate(values)]
    ref_q = compile_query(text, dict(tables), typed_streams=True)
    ref = BatchProcessor(
        ref_q,
        make_decoder(columns),
        encode=make_encoder(ref_q.output_columns, ref_q.output_types),
        **common,
    )
    variants = []
    for batch_lookups, typed, project in VARIANTS:
        cached = [CachedTable(t) for t in tables.values()] if typed else []
        catalog = {c.name: c for c in cached} if typed else dict(tables)
        gen_q = compile_query(text, catalog, typed_streams=True)
        gen = FusedProcessor(
            gen_q,
            make_decoder(columns),
            batch_lookups=batch_lookups,
            columns=columns if typed else None,
            project=project,
            **common,
        )
        if projected and project and not batch_lookups:
            assert gen.generated.notes, (sql, gen.generated.source)
        variants.append((gen, gen_q, cached))
    for round_ in range(2):
        if round_:
            for name, k, new in changes:
                if new is None:
                    tables[name].delete(str(k))
                else:
                    tables[name].put_row(new)
        expected = run_collected(ref, records)
        for gen, _, _ in variants:
            got = run_collected(gen, records)
            assert got.out == expected.out, (sql, round_, gen.generated.source)
            assert sorted(got.dead) == sorted(expected.dead), (sql, round_, gen.generated.source)
    for _, gen_q, cached in variants:
        gen_q.close()
        for c in cached:
            c.close()
    ref_q.close()
    if any(row.get("d") == UNREADABLE for t in tables.values() for row in t.snapshot().values()):
        return  # DuckDB cannot hold it; the closures decided above
    # DuckDB: the rows of every record that was not a dead letter.
    dead = {offset for offset, _ in expected.dead}
    by_key: dict[bytes, list[tuple[Any, ...]]] = {}
    for _, key, value, _ in expected.out:
        assert key is not None
        assert value is not None
        by_key.setdefault(key, []).append(tuple(loads_exact(value).values()))
    mirror = _mirror()
    mirror.load(tables)
    decode = make_decoder(columns)
    for rec in records:
        if rec.offset in dead:
            continue
        theirs = mirror.run(sql, decode(rec.value))
        ours = by_key.get(str(rec.offset).encode(), [])
        assert same_rows(ours, [tuple(row) for row in theirs]), (
            sql,
            rec.value,
            ours,
            theirs,
        )


def examples(sql: st.SearchStrategy[str]) -> Callable[[Test], Test]:
    """Queries from ``sql`` over random tables, records and table changes between the batches."""
    return codegen_examples(
        sql=sql,
        r=table_rows("r"),
        q=table_rows("q"),
        values=st.lists(record(), min_size=1, max_size=12),
        changes=table_changes(),
    )


@examples(query())
def test_generated_matches_closures_and_duckdb(
    sql: str,
    r: list[dict[str, Any]],
    q: list[dict[str, Any]],
    values: list[bytes],
    changes: list[tuple[str, int, dict[str, Any] | None]],
) -> None:
    check_against_closures_and_duckdb(sql, r, q, values, changes)


@examples(query(closures=False))
def test_projected_lookups_match_closures_and_duckdb(
    sql: str,
    r: list[dict[str, Any]],
    q: list[dict[str, Any]],
    values: list[bytes],
    changes: list[tuple[str, int, dict[str, Any] | None]],
) -> None:
    """Queries that call no closure (so every lookup is projected: sql.codegen.projection),
    tables changing between the batches."""
    check_against_closures_and_duckdb(sql, r, q, values, changes, projected=True)


_MIRROR: list[DuckMirror] = []


def _mirror() -> DuckMirror:
    """One DuckDB for the module (a connection per example costs more than the example)."""
    if not _MIRROR:
        _MIRROR.append(DuckMirror())
    return _MIRROR[0]
