"""Differential test against DuckDB for time: ``_event_time``/``_timestamp`` as TIMESTAMP(3)
against DATE, TIMESTAMP and literals, with INTERVAL arithmetic and EPOCH_MS, in subqueries and
not, on records that sit on and next to day boundaries around a year end (the subquery grammar's
test is test_differential.py)."""

from __future__ import annotations

import datetime as dt

import duckdb
from hypothesis import given
from hypothesis import strategies as st

from sql import Catalog, compile_query
from tables.memory import MemoryTable
from tests.unit.sql.support import COMPARISONS, diff_settings, same_rows

TIME_DECLS = (
    "CREATE TABLE w (id BIGINT, effective_date DATE, valid_from TIMESTAMP, PRIMARY KEY (id))"
    " WITH (topic='w');\n"
    "CREATE STREAM m (id BIGINT, ts BIGINT, d DATE, t TIMESTAMP)"
    " WITH (topic='m', timestamp='ts');\n"
)
DAY_MS = 86_400_000
#: Days around a year end, and offsets that sit on and next to the day boundary.
DAYS = [20818, 20819, 20820]  # 2026-12-30 .. 2027-01-01
OFFSETS = [-1, 0, 1, 3_600_000, DAY_MS - 1]
POINTS = [
    "m._event_time",
    "m._timestamp",
    "m.t",
    "m.d",
    "w.effective_date",
    "w.valid_from",
    "DATE '2026-12-31'",
    "TIMESTAMP '2026-12-31 00:00:00.001'",
    "TIMESTAMP '2026-12-31 23:59:59.999'",
    "m._event_time - INTERVAL '1' HOUR",
    "m._event_time + INTERVAL 1 DAY",
    "m.d + INTERVAL '90' MINUTE",
    "EPOCH_MS(m.ts)",
    "EPOCH_MS(m.ts - 1)",
]
millis = st.builds(lambda d, o: d * DAY_MS + o, st.sampled_from(DAYS), st.sampled_from(OFFSETS))


def _iso(ms: int | None, date_only: bool = False) -> str | None:
    if ms is None:
        return None
    t = dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=ms)
    return t.date().isoformat() if date_only else t.isoformat(sep=" ")


@st.composite
def time_item(draw: st.DrawFn) -> str:
    """A comparison of two points in time, inside a subquery over ``w`` or not, or a value."""
    a, b = draw(st.sampled_from(POINTS)), draw(st.sampled_from(POINTS))
    op = draw(st.sampled_from(COMPARISONS))
    kind = draw(st.sampled_from(["count", "exists", "cmp", "value"]))
    if kind == "value":
        return draw(
            st.sampled_from(
                [
                    "m._event_time",
                    "m._event_time - INTERVAL '1' HOUR",
                    "EPOCH_MS(m._event_time)",
                    "m._event_time - m.t",
                    "m.d - DATE '2026-12-31'",
                    "m.d + INTERVAL 1 DAY",
                    "(SELECT MAX(w.valid_from) FROM w WHERE w.effective_date <= m._event_time)",
                    # equality across DATE and TIMESTAMP through each plan: index probe (text
                    # stored in a DATE column), maintained IN-set, constant IN list
                    "(SELECT COUNT(*) FROM w WHERE w.effective_date = m._event_time)",
                    "(SELECT COUNT(*) FROM w WHERE w.valid_from = m.d)",
                    "m._event_time IN (SELECT w.effective_date FROM w)",
                    "m.d NOT IN (SELECT w.valid_from FROM w)",
                    "m._event_time IN (DATE '2026-12-31', DATE '2027-01-01', NULL)",
                    "m.d IN (TIMESTAMP '2026-12-31 00:00:00', m.t)",
                ]
            )
        )
    if "w." not in a + b:
        return f"{a} {op} {b}"
    where = f"{a} {op} {b}"
    if draw(st.booleans()):
        where += " AND w.id = m.id"
    if kind == "exists":
        return f"EXISTS (SELECT 1 FROM w WHERE {where})"
    return f"(SELECT COUNT(*) FROM w WHERE {where})"


@diff_settings(3)
@given(
    items=st.lists(time_item(), min_size=1, max_size=3),
    rows=st.lists(
        st.tuples(st.one_of(st.none(), millis), st.one_of(st.none(), millis)), max_size=4
    ),
    records=st.lists(
        st.tuples(
            st.integers(0, 4), millis, st.one_of(st.none(), millis), st.one_of(st.none(), millis)
        ),
        min_size=1,
        max_size=4,
    ),
    record_ts=millis,
)
def test_time_types_match_duckdb(
    items: list[str],
    rows: list[tuple[int | None, int | None]],
    records: list[tuple[int, int, int | None, int | None]],
    record_ts: int,
) -> None:
    """``_event_time``/``_timestamp`` as TIMESTAMP(3) against DATE, TIMESTAMP, literals, with
    INTERVAL arithmetic and EPOCH_MS, in subqueries and not; records on day boundaries."""
    sql = "SELECT m.id, " + ", ".join(f"{e} AS e{i}" for i, e in enumerate(items)) + " FROM m"
    w = MemoryTable("w", key_field="id")
    for i, (day, start) in enumerate(rows):
        w.put_row({"id": i, "effective_date": _iso(day, True), "valid_from": _iso(start)})
    q = compile_query(TIME_DECLS + sql, Catalog.of({"w": w}))
    con = duckdb.connect()
    con.execute("CREATE TABLE w (id BIGINT, effective_date DATE, valid_from TIMESTAMP)")
    for i, (day, start) in enumerate(rows):
        con.execute(
            "INSERT INTO w VALUES (?, ?::DATE, ?::TIMESTAMP)", [i, _iso(day, True), _iso(start)]
        )
    try:
        for rid, ts, d, t in records:
            value = {"id": rid, "ts": ts, "d": _iso(d, True), "t": _iso(t)}
            con.execute(
                "CREATE OR REPLACE TABLE m AS SELECT ?::BIGINT AS id, ?::BIGINT AS ts,"
                " ?::DATE AS d, ?::TIMESTAMP AS t, epoch_ms(?::BIGINT) AS _event_time,"
                " epoch_ms(?::BIGINT) AS _timestamp",
                [rid, ts, value["d"], value["t"], ts, record_ts],
            )
            theirs = [tuple(x) for x in con.execute(sql).fetchall()]
            ours = [tuple(x.values()) for x in q.process(value, timestamp=record_ts)]
            assert same_rows(ours, theirs), (sql, value, ours, theirs)
    finally:
        q.close()
        con.close()
