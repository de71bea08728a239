"""Projected lookups (:mod:`sql.codegen.projection`) on fixed cases, against the closures: what
EXPLAIN says, maps following their table's changes (int and text probes), a row whose value
cannot be read (its records take the row path, failing only where the closures fail), and the
subscriptions' life. The hypothesis differential test is in ``test_codegen.py``."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from agents.cache import CachedTable
from bench.pipeline import PIPELINE
from sql import compile_query, explain_code, explain_line, parse_script
from sql.codegen.projection import Projection
from tables.memory import MemoryTable
from tests.support.codegen import Collect, engine, run_collected
from tests.support.rocks import Record
from tests.unit.sql.support import declarations, make_tables

COMMON: dict[str, Any] = dict(name="q", sink_topic="out", key_columns=(), dead_letter_topic="dlq")


def test_explain_names_each_projected_lookup() -> None:
    tables = {"users": MemoryTable("users", "id"), "limits": MemoryTable("limits", "symbol")}
    q = compile_query(PIPELINE.format(partitions=2), dict(tables), typed_streams=True)
    assert explain_line(q).splitlines() == [
        "Codegen: one generated function per batch (--code prints it)",
        "  Projected lookup: limits by key → (max_price), a map kept from its change feed",
        "  Projected lookup: users by key → (u.tier <> 'blocked', name), a map kept from its"
        " change feed; a row failing u.tier <> 'blocked' (the only WHERE term) is none",
    ]
    code = explain_code(q)
    assert code.count(" = fill") == 2  # two probes: a key not in its map fills it
    assert " is SLOW" in code  # the row path of a row that cannot be projected
    q.close()


def _both(sql: str, tables: dict[str, MemoryTable]) -> list[Any]:
    """The closures and the generated function (projected), each over the tables as given and
    through the agents' row cache."""
    columns = parse_script(sql).declarations["st"].columns
    out = []
    for fused in (False, True):
        for cached in (False, True):
            catalog: dict[str, Any] = (
                {n: CachedTable(t) for n, t in tables.items()} if cached else dict(tables)
            )
            q = compile_query(sql, catalog, typed_streams=True)
            out.append((q, engine(q, columns, fused, **COMMON), catalog))
    return out


def _outputs(engines: list[Any], records: list[Record]) -> tuple[list[Any], list[Any]]:
    results: list[tuple[list[Any], list[Any]]] = []
    for _, p, _ in engines:
        got = run_collected(p, records)
        results.append(([o[2] for o in got.out], sorted(got.dead)))
    assert all(r == results[0] for r in results), results
    return results[0]


def _close(engines: list[Any]) -> None:
    for q, _, catalog in engines:
        q.close()
        for t in catalog.values():
            if isinstance(t, CachedTable):
                t.close()


def test_maps_follow_the_tables_changes() -> None:
    """Updates, deletes and inserts between batches — of a key probed as an int (the table's
    text key "2") and as a string, of a key known missing — read as the closures read them."""
    tables = make_tables()
    tables["r"].put_row({"id": 1, "a": 1, "d": Decimal("1.50"), "s": "a"})
    tables["r"].put_row({"id": 2, "a": 2, "d": Decimal("2.50"), "s": "b"})
    sql = declarations() + (
        "SELECT st.x, r.s, r.d FROM st JOIN r ON r.id = st.x WHERE r.s <> 'c' AND r.a > 0"
    )
    engines = _both(sql, tables)
    records = [Record("st", 0, i, 0, b"k", b'{"x": %d}' % x) for i, x in enumerate([1, 2, 3])]
    assert _outputs(engines, records)[0] == [
        b'{"x":1,"s":"a","d":1.50}',
        b'{"x":2,"s":"b","d":2.50}',
    ]
    tables["r"].put_row({"id": 2, "a": 2, "d": Decimal("9"), "s": "z"})  # an update
    tables["r"].delete("1")
    tables["r"].put_row({"id": 3, "a": 3, "d": 3, "s": "c"})  # inserted, filtered out
    assert _outputs(engines, records)[0] == [b'{"x":2,"s":"z","d":9.00}']
    tables["r"].put_row({"id": 3, "a": 3, "d": "3.5", "s": "d"})
    tables["r"].put_row({"id": 2, "a": -2, "d": Decimal("9"), "s": "z"})
    assert _outputs(engines, records)[0] == [b'{"x":3,"s":"d","d":3.50}']
    _close(engines)


def test_a_row_that_cannot_be_read_fails_where_the_closures_fail() -> None:
    """Key 1's DECIMAL is unreadable: its map entry is SLOW, and its records read the row at
    each value's own place — those a later WHERE term drops give no dead letter, the others
    fail with the closures' reason; key 2 keeps its map entry."""
    tables = make_tables()
    tables["r"].put_row({"id": 1, "a": 1, "d": "oops", "s": "a"})
    tables["r"].put_row({"id": 2, "a": 2, "d": Decimal("2.50"), "s": "b"})
    sql = declarations() + (
        "SELECT st.x, r.d * 2 AS dd FROM st JOIN r ON r.id = st.x WHERE r.a + st.y > 2"
    )
    engines = _both(sql, tables)
    values = [b'{"x": 1, "y": 0}', b'{"x": 1, "y": 5}', b'{"x": 2, "y": 5}', b'{"x": 2, "y": 0}']
    records = [Record("st", 0, i, 0, b"k", v) for i, v in enumerate(values)]
    outs, dead = _outputs(engines, records)
    assert outs == [b'{"x":2,"dd":5.00}']
    assert [offset for offset, _ in dead] == [1]
    assert "oops" in dead[0][1]
    _close(engines)


def test_maps_subscribe_when_filled_and_end_with_the_query() -> None:
    tables = make_tables()
    tables["r"].put_row({"id": 1, "a": 1, "d": Decimal("1.50"), "s": "a"})
    feed = tables["r"]._feed
    before = len(feed._listeners)
    sql = declarations() + "SELECT st.x, r.s FROM st JOIN r ON r.id = st.x"
    q = compile_query(sql, dict(tables), typed_streams=True)
    explain_code(q)  # generated for EXPLAIN only: never run, never subscribed
    p = engine(q, parse_script(sql).declarations["st"].columns, True, **COMMON)
    assert len(feed._listeners) == before
    p.run([Record("st", 0, 0, 0, b"k", b'{"x": 1}')], Collect())
    assert len(feed._listeners) == before + 1
    q.close()
    assert len(feed._listeners) == before


def _fold_note(sql: str, tables: dict[str, MemoryTable]) -> str:
    q = compile_query(declarations() + sql, dict(tables), typed_streams=True)
    try:
        return explain_line(q)
    finally:
        q.close()


def test_the_joins_only_where_term_on_its_row_is_folded_into_the_map() -> None:
    """``r.s <> 'c'``, the only WHERE term after the (last, inner) join, reads the row alone:
    rows it does not pass (FALSE or NULL) are no row in the map, the one value left (``r.d``)
    is kept bare (a NULL one too); changes of the row move it in and out of the map."""
    tables = make_tables()
    tables["r"].put_row({"id": 1, "a": 1, "d": Decimal("1.50"), "s": "a"})
    tables["r"].put_row({"id": 2, "a": 2, "d": Decimal("2.50"), "s": "c"})
    tables["r"].put_row({"id": 3, "a": 3, "d": None, "s": None})  # the term is NULL: dropped
    tables["r"].put_row({"id": 4, "a": 4, "d": None, "s": "b"})  # a NULL value kept
    sql = "SELECT st.x, r.d FROM st JOIN r ON r.id = st.x WHERE r.s <> 'c'"
    assert "a row failing r.s <> 'c' (the only WHERE term) is none" in _fold_note(sql, tables)
    engines = _both(declarations() + sql, tables)
    values = [b'{"x": %d}' % x for x in (1, 2, 3, 4, 5, 1)]
    records = [Record("st", 0, i, 0, b"k", v) for i, v in enumerate(values)]
    assert _outputs(engines, records)[0] == [
        b'{"x":1,"d":1.50}',
        b'{"x":4,"d":null}',
        b'{"x":1,"d":1.50}',
    ]
    tables["r"].put_row({"id": 1, "a": 1, "d": Decimal("1.50"), "s": "c"})  # now dropped
    tables["r"].put_row({"id": 2, "a": 2, "d": Decimal("7"), "s": "z"})  # now passes
    tables["r"].put_row({"id": 5, "a": 5, "d": Decimal("5"), "s": "e"})  # inserted
    assert _outputs(engines, records)[0] == [
        b'{"x":2,"d":7.00}',
        b'{"x":4,"d":null}',
        b'{"x":5,"d":5.00}',
    ]
    # Unreadable DECIMALs: the entry is SLOW, the row path decides — a dead letter where the
    # term passes (as the closures fail), nothing where it drops the record.
    tables["r"].put_row({"id": 6, "a": 6, "d": "oops", "s": "a"})
    tables["r"].put_row({"id": 7, "a": 7, "d": "oops", "s": "c"})
    late = [Record("st", 0, 10 + i, 0, b"k", b'{"x": %d}' % x) for i, x in enumerate((6, 7))]
    outs, dead = _outputs(engines, late)
    assert outs == []
    assert [offset for offset, _ in dead] == [10]
    _close(engines)


def test_no_fold_where_something_else_could_tell_the_difference() -> None:
    """A LEFT join, a second WHERE term (its errors are the record's), a subquery reading the
    same row, a term reading the stream: the map keeps every row."""
    tables = make_tables()
    tables["r"].put_row({"id": 1, "a": 0, "d": Decimal("1.50"), "s": "c"})
    tables["r"].put_row({"id": 2, "a": 2, "d": Decimal("2.50"), "s": "b"})
    cases = [
        "SELECT st.x, r.d FROM st LEFT JOIN r ON r.id = st.x WHERE r.s <> 'c'",
        "SELECT st.x, r.d FROM st JOIN r ON r.id = st.x WHERE r.s <> 'c' AND 10 / r.a > 1",
        "SELECT st.x, r.d, (SELECT s FROM r r2 WHERE r2.id = st.x) AS s2"
        " FROM st JOIN r ON r.id = st.x WHERE r.s <> 'c'",
        "SELECT st.x, r.d FROM st JOIN r ON r.id = st.x WHERE r.s <> st.z",
    ]
    values = [b'{"x": 1, "z": "a"}', b'{"x": 2, "z": "b"}', b'{"x": 3, "z": "c"}']
    records = [Record("st", 0, i, 0, b"k", v) for i, v in enumerate(values)]
    for sql in cases:
        assert "is none" not in _fold_note(sql, tables), sql
        engines = _both(declarations() + sql, tables)
        _outputs(engines, records)  # the closures and the generated code agree
        _close(engines)


def test_int_keys_in_the_dense_list_and_the_dict_follow_changes() -> None:
    """Small non-negative int probes are held in the map's list by index, negative and far ones
    in its dict; updates and deletes reach both (the closures read the same)."""
    tables = make_tables()
    ids = [0, 3, 2_000_000, -5, 10**12]
    for i in ids:
        tables["r"].put_row({"id": i, "a": i, "d": Decimal("1.50"), "s": f"s{i}"})
    sql = declarations() + "SELECT st.x, r.s FROM st JOIN r ON r.id = st.x"
    engines = _both(sql, tables)
    records = [Record("st", 0, n, 0, b"k", b'{"x": %d}' % i) for n, i in enumerate([*ids, 7])]
    assert _outputs(engines, records)[0] == [b'{"x":%d,"s":"s%d"}' % (i, i) for i in ids]
    maps = [m for _, p, _ in engines for m in _maps(p)]
    assert maps
    # 0, 3 and 7 (no row) by index, the list grown to 8; the rest in the dict.
    for m in maps:
        assert (m.dense, len(m.dense_list), sorted(m.values)) == (True, 8, [-5, 2_000_000, 10**12])
    for i in ids[1:]:
        tables["r"].put_row({"id": i, "a": i, "d": Decimal("1.50"), "s": f"t{i}"})
    tables["r"].delete("0")
    assert _outputs(engines, records)[0] == [b'{"x":%d,"s":"t%d"}' % (i, i) for i in ids[1:]]
    _close(engines)


def _maps(p: Any) -> list[Projection]:
    """The projected lookups' maps of a generated processor (none for the closures)."""
    fn = getattr(getattr(p, "generated", None), "fn", None)
    found = [] if fn is None else list(fn.__globals__.values())
    return [m.__self__ for m in found if isinstance(getattr(m, "__self__", None), Projection)]
