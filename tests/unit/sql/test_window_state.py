"""Aggregate state persistence and a differential check of windowed aggregates against DuckDB.

Round trip: process N records, keep ``dirty_state()`` in a JSON store (as the agent keeps it in
RocksDB), compile the query afresh, ``restore_state`` and process the rest: the outputs must be
those of an uninterrupted run, for every window kind and EMIT mode, out-of-order and late
records included.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sql import Catalog, CompiledQuery, LateRecordError, Retraction, StateError, compile_query
from tests.unit.sql.support import IN_CI, same_value

DECL = (
    "CREATE STREAM ev (k VARCHAR, ts BIGINT, v BIGINT, d DECIMAL(10,2)) "
    "WITH (topic='ev', timestamp='ts', out_of_orderness='3s');\n"
)
AGGS = (
    "COUNT(*) AS n, SUM(d) AS sd, AVG(d) AS ad, MIN(v) AS lo, MAX(v) AS hi, COUNT(DISTINCT v) AS dv"
)
WINDOWS = ["TUMBLING(5s)", "HOPPING(10s, 4s, GRACE 1s)", "SESSION(2s)", None]
EXAMPLES = 25 if IN_CI else 60

Record = tuple[str, int, int, Decimal]
records_st = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.integers(0, 40_000),
        st.integers(-3, 3),
        st.decimals(min_value=-100, max_value=100, places=2, allow_nan=False),
    ),
    max_size=40,
)


def query_text(window: str | None, emit: str, late: str) -> str:
    win = f" WINDOW {window}" if window else ""
    sink = f"CREATE TABLE t WITH (topic='t', late='{late}') AS "
    return DECL + f"{sink}SELECT k, {AGGS} FROM ev{win} GROUP BY k EMIT {emit}"


def feed(q: CompiledQuery, records: list[Record], store: dict[str, Any] | None) -> list[Any]:
    out: list[Any] = []
    for k, ts, v, d in records:
        try:
            rows = q.process({"k": k, "ts": ts, "v": v, "d": d})
            out.append([(type(r) is Retraction, dict(r)) for r in rows])
        except LateRecordError as err:
            out.append(("late", err.fields["window"], err.rows))
        if store is not None:
            persist(store, q.dirty_state())
    return out


def persist(store: dict[str, Any], changes: dict[str, Any]) -> None:
    """What the agent does: JSON-encode each entry; None deletes."""
    for sid, value in changes.items():
        if value is None:
            store.pop(sid, None)
        else:
            store[sid] = json.dumps(value)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    records=records_st,
    split=st.integers(0, 40),
    window=st.sampled_from(WINDOWS),
    emit=st.sampled_from(["CHANGES", "FINAL"]),
    late=st.sampled_from(["dlq", "update"]),
)
def test_state_round_trip(
    records: list[Record], split: int, window: str | None, emit: str, late: str
) -> None:
    sql = query_text(window, emit, late)
    whole = compile_query(sql, Catalog())
    expected = [*feed(whole, records, None), whole.finish()]

    first = compile_query(sql, Catalog())
    store: dict[str, Any] = {}
    got = feed(first, records[:split], store)
    resumed = compile_query(sql, Catalog())
    resumed.restore_state((sid, json.loads(text)) for sid, text in store.items())
    assert resumed.watermark == first.watermark
    got += feed(resumed, records[split:], store)
    got.append(resumed.finish())
    assert repr(got) == repr(expected)  # repr: Decimal digits and scale too (1.50 != 1.5)
    # finish() drops every window: only the stream time stays (a plain GROUP BY keeps its groups)
    persist(store, resumed.dirty_state())
    if window is not None:
        assert set(store) <= {"time"}


def test_dirty_state_reports_drops_and_stays_bounded() -> None:
    q = compile_query(query_text("TUMBLING(5s)", "FINAL", "dlq"), Catalog())
    store: dict[str, Any] = {}
    for i in range(200):  # one key, time moving on: at most two windows live at once
        q.process({"k": "a", "ts": i * 1000, "v": 1, "d": Decimal("0.10")})
        persist(store, q.dirty_state())
        assert len(store) <= 3  # "time" + the open window (+ the one the 3 s slack keeps)
    assert json.loads(store["time"]) == {"max": 199_000, "wm": 196_000}
    assert q.dirty_state() == {}  # nothing changed since the last call
    q.finish()
    persist(store, q.dirty_state())
    assert list(store) == ["time"]


def test_a_growing_session_keeps_one_close_entry() -> None:
    q = compile_query(query_text("SESSION(2s)", "FINAL", "dlq"), Catalog())
    for i in range(2000):  # one session, extended by every record
        q.process({"k": "a", "ts": i * 100, "v": 1, "d": Decimal(1)})
    agg: Any = q._agg
    assert len(agg.heap) <= 2
    assert q.finish()[0]["n"] == 2000


def old_layout(sid: str, value: Any) -> Any:
    """An entry as stores written before the list layout hold it: a dict of named fields, a
    SUM's exact part tagged (``{"$d": "1.50"}``)."""

    def acc(state: Any) -> Any:
        if isinstance(state, list) and len(state) == 5 and isinstance(state[2], str):
            return [*state[:2], {"$d": state[2]}, *state[3:]]
        return state

    if value is None or sid == "time":
        return value
    if sid.startswith("g:"):
        return {"g": value[0], "a": [acc(a) for a in value[1]]}
    key, start, end, accs, seq, closed, emitted = value
    accs = [acc(a) for a in accs]
    return {"g": key, "s": start, "e": end, "a": accs, "n": seq, "c": closed, "x": emitted}


@pytest.mark.parametrize("window", WINDOWS)
def test_state_written_in_the_dict_layout_still_restores(window: str | None) -> None:
    sql = query_text(window, "CHANGES", "update")
    records = [("a", 1000, 1, Decimal("1.50")), ("b", 1500, 2, Decimal("2.25"))]
    records += [("a", 2500, 3, Decimal("-0.75")), ("b", 3000, -1, Decimal("10"))]
    whole = compile_query(sql, Catalog())
    expected = feed(whole, records, None)
    first = compile_query(sql, Catalog())
    store: dict[str, Any] = {}
    got = feed(first, records[:2], store)
    old = {sid: old_layout(sid, json.loads(text)) for sid, text in store.items()}
    assert any(isinstance(v, dict) and "a" in v for v in old.values())
    resumed = compile_query(sql, Catalog())
    resumed.restore_state(old.items())
    got += feed(resumed, records[2:], None)
    assert repr(got) == repr(expected)


def test_restoring_foreign_state_is_an_error() -> None:
    session = compile_query(query_text("SESSION(2s)", "FINAL", "dlq"), Catalog())
    session.process({"k": "a", "ts": 1, "v": 1, "d": Decimal(1)})
    state = session.dirty_state()
    tumbling = compile_query(query_text("TUMBLING(5s)", "FINAL", "dlq"), Catalog())
    with pytest.raises(StateError, match="not a tumbling window"):
        tumbling.restore_state(state.items())


# --- DuckDB as the oracle -----------------------------------------------------------------------
in_order_st = st.lists(
    st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 30_000), st.integers(-5, 5)),
    min_size=1,
    max_size=60,
).map(lambda rs: sorted(rs, key=lambda r: r[1]))


def duck_windows(records: list[tuple[str, int, int]], size: int, advance: int) -> list[Any]:
    con = duckdb.connect()
    con.execute("CREATE TABLE ev (k VARCHAR, ts BIGINT, v BIGINT)")
    con.executemany("INSERT INTO ev VALUES (?, ?, ?)", records)
    lo = -((size + advance - 1) // advance) * advance
    rows = con.execute(
        f"""SELECT k, COUNT(*), SUM(v), MIN(v), MAX(v), COUNT(DISTINCT v), AVG(v), s, s + {size}
        FROM ev, range({lo}, 40000, {advance}) r(s)
        WHERE s <= ts AND ts < s + {size}
        GROUP BY k, s ORDER BY k, s"""
    ).fetchall()
    return [tuple(r) for r in rows]


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    records=in_order_st,
    shape=st.sampled_from([(5000, 5000), (1000, 1000), (10_000, 2000), (7000, 3000)]),
    emit=st.sampled_from(["CHANGES", "FINAL"]),
)
def test_windows_match_duckdb_on_in_order_data(
    records: list[tuple[str, int, int]], shape: tuple[int, int], emit: str
) -> None:
    size, advance = shape
    window = f"TUMBLING({size}ms)" if size == advance else f"HOPPING({size}ms, {advance}ms)"
    q = compile_query(
        "CREATE STREAM ev (k VARCHAR, ts BIGINT, v BIGINT) WITH (topic='ev', timestamp='ts');\n"
        f"SELECT k, COUNT(*), SUM(v), MIN(v), MAX(v), COUNT(DISTINCT v), AVG(v) FROM ev "
        f"WINDOW {window} GROUP BY k EMIT {emit}",
        Catalog(),
    )
    latest: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for k, ts, v in records:
        for r in q.process({"k": k, "ts": ts, "v": v}):
            latest[(r["k"], r["window_start"])] = tuple(r.values())
    for r in q.finish():
        latest[(r["k"], r["window_start"])] = tuple(r.values())
    ours = [latest[key] for key in sorted(latest)]
    theirs = duck_windows(records, size, advance)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert all(same_value(x, y) for x, y in zip(a, b, strict=True)), (a, b)
