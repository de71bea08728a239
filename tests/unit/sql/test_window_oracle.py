"""Out-of-order data against an oracle: DuckDB aggregates the (record, window) pairs the
documented rules accept, and the rules decide when each EMIT FINAL row may appear.

Rules (docs, "Windows and time"): the watermark after record *i* is max(ts_1..ts_i) - slack; a
record counts in window [s, s+size) iff that watermark is below s + size + grace; a record that
counts nowhere raises LateRecordError; a window's row is emitted by the first record whose
watermark reaches s + size + grace, or at finish().
"""

from __future__ import annotations

from typing import Any

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st

from sql import Catalog, LateRecordError, compile_query
from tests.unit.sql.support import IN_CI, same_value

SLACK = 2000

records_st = st.lists(
    st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 30_000), st.integers(-5, 5)),
    min_size=1,
    max_size=50,
)


def oracle(
    records: list[tuple[str, int, int]], size: int, advance: int, grace: int
) -> tuple[list[tuple[Any, ...]], set[int], list[int]]:
    """Expected (rows sorted by key and start, indexes of late records, watermark per record)."""
    marks, top = [], None
    for _, ts, _ in records:
        top = ts if top is None else max(top, ts)
        marks.append(top - SLACK)
    con = duckdb.connect()
    con.execute("CREATE TABLE ev (i BIGINT, k VARCHAR, ts BIGINT, v BIGINT, w BIGINT)")
    con.executemany(
        "INSERT INTO ev VALUES (?, ?, ?, ?, ?)",
        [(i, k, ts, v, marks[i]) for i, (k, ts, v) in enumerate(records)],
    )
    lo = -((size + advance - 1) // advance) * advance
    pairs = f"""FROM ev, range({lo}, 40000, {advance}) r(s)
        WHERE s <= ts AND ts < s + {size} AND w < s + {size} + {grace}"""
    rows = con.execute(
        f"SELECT k, COUNT(*), SUM(v), MAX(v), s, s + {size} {pairs} GROUP BY k, s ORDER BY k, s"
    ).fetchall()
    counted = {i for (i,) in con.execute(f"SELECT DISTINCT i {pairs}").fetchall()}
    late = set(range(len(records))) - counted
    return [tuple(r) for r in rows], late, marks


@settings(max_examples=30 if IN_CI else 80, deadline=None)
@given(
    records=records_st,
    shape=st.sampled_from(
        [(5000, 5000, 0), (4000, 4000, 1000), (10_000, 3000, 0), (6000, 2000, 500)]
    ),
)
def test_out_of_order_final_rows_match_the_oracle(
    records: list[tuple[str, int, int]], shape: tuple[int, int, int]
) -> None:
    size, advance, grace = shape
    window = f"HOPPING({size}ms, {advance}ms, GRACE {grace}ms)"
    q = compile_query(
        "CREATE STREAM ev (k VARCHAR, ts BIGINT, v BIGINT) "
        f"WITH (topic='ev', timestamp='ts', out_of_orderness='{SLACK}ms');\n"
        f"SELECT k, COUNT(*), SUM(v), MAX(v) FROM ev WINDOW {window} GROUP BY k EMIT FINAL",
        Catalog(),
    )
    expected, expected_late, marks = oracle(records, size, advance, grace)
    emitted: list[tuple[Any, ...]] = []
    late: set[int] = set()
    for i, (k, ts, v) in enumerate(records):
        try:
            rows = q.process({"k": k, "ts": ts, "v": v})
        except LateRecordError as err:
            late.add(i)
            rows = err.rows
        for r in rows:
            due = r["window_end"] + grace
            assert marks[i] >= due, (i, r)  # closed by this record's watermark ...
            assert i == 0 or marks[i - 1] < due, (i, r)  # ... and not by an earlier one
        emitted += [tuple(r.values()) for r in rows]
    for r in q.finish():
        assert marks[-1] < r["window_end"] + grace  # still open at the end
        emitted.append(tuple(r.values()))
    assert late == expected_late
    ours = sorted(emitted, key=lambda r: (r[0], r[4]))
    assert len(ours) == len(expected)
    for a, b in zip(ours, expected, strict=True):
        assert all(same_value(x, y) for x, y in zip(a, b, strict=True)), (a, b)
