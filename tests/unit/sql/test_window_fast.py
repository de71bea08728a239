"""The tumbling fold's fast path (:meth:`TimeWindowAggregate._tumbling_adder`) against the
general one (``fast_path = False``): same rows, same errors, same state, record by record.

The fast path takes records whose window exists and is open; everything else (a new window, a
closed one, a late record, no event time, a restored window the watermark already passed) goes
the general way. Both queries below get the same records, one through a window kind that is
tumbling without the fast path: every output row, every error (its class and fields) and the
persisted state after each record must be equal.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sql import Catalog, CompiledQuery, SqlRuntimeError, compile_query
from sql.operators.window_time import TimeWindowAggregate
from sql.window_kinds import WINDOW_KINDS, WindowKind, register_window_kind
from tests.unit.sql.support import IN_CI

DECL = (
    "CREATE STREAM ev (k VARCHAR, ts BIGINT, v BIGINT, d DECIMAL(10,2)) "
    "WITH (topic='ev', timestamp='ts', out_of_orderness='{ooo}');\n"
)
AGGS = [
    "COUNT(*) AS n",
    "SUM(d) AS sd",
    "COUNT(v) AS nv, SUM(v) AS sv",
    "SUM(d) AS sd, MIN(v) AS lo",
]
records_st = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", None]),
        st.one_of(st.none(), st.integers(0, 30_000)),
        st.one_of(st.none(), st.integers(-3, 3)),
        st.one_of(st.none(), st.decimals(-100, 100, places=2, allow_nan=False)),
    ),
    max_size=50,
)


class GeneralTumbling(TimeWindowAggregate):
    """Tumbling windows folded by the general path only."""

    fast_path = False


@pytest.fixture(scope="module", autouse=True)
def general_kind() -> Iterator[WindowKind]:
    kind = register_window_kind(WindowKind("GENTUMBLING", ("size",), GeneralTumbling))
    try:
        yield kind
    finally:
        del WINDOW_KINDS["GENTUMBLING"]


def is_fast(q: CompiledQuery) -> bool:
    agg: Any = q._agg
    return bool(agg.add.__qualname__.endswith("_tumbling_adder.<locals>.add"))


def outcome(q: CompiledQuery, record: dict[str, Any]) -> Any:
    try:
        return [dict(r) for r in q.process(record)]
    except SqlRuntimeError as err:
        return (type(err).__name__, err.message, sorted(err.fields), [dict(r) for r in err.rows])


@settings(max_examples=40 if IN_CI else 100, deadline=None)
@given(
    records=records_st,
    aggs=st.sampled_from(AGGS),
    emit=st.sampled_from(["CHANGES", "FINAL"]),
    late=st.sampled_from(["dlq", "update"]),
    grace=st.sampled_from(["", ", GRACE 1s"]),
    ooo=st.sampled_from(["0", "2s"]),
)
def test_fast_path_is_the_general_path(
    records: list[tuple[Any, Any, Any, Any]], aggs: str, emit: str, late: str, grace: str, ooo: str
) -> None:
    sql = (
        DECL.format(ooo=ooo)
        + f"CREATE TABLE t WITH (topic='t', late='{late}') AS SELECT k, {aggs} FROM ev "
        f"WINDOW TUMBLING(5s{grace}) GROUP BY k EMIT {emit}"
    )
    fast = compile_query(sql, Catalog())
    general = compile_query(sql.replace("TUMBLING", "GENTUMBLING"), Catalog())
    assert is_fast(fast)
    assert not is_fast(general)
    for k, ts, v, d in records:
        record = {"k": k, "ts": ts, "v": v, "d": d}
        assert repr(outcome(fast, record)) == repr(outcome(general, record))
        assert fast.dirty_state() == general.dirty_state()  # JSON-safe: == is exact
    assert repr(fast.finish()) == repr(general.finish())


def test_hopping_and_three_aggregates_keep_the_general_path() -> None:
    for window, aggs in [
        ("HOPPING(10s, 5s)", "COUNT(*) AS n"),
        ("TUMBLING(5s)", AGGS[0] + ", " + AGGS[2]),
    ]:
        q = compile_query(
            DECL.format(ooo="0") + f"SELECT k, {aggs} FROM ev WINDOW {window} GROUP BY k",
            Catalog(),
        )
        assert not is_fast(q)
        assert q.process({"k": "a", "ts": 1, "v": 1, "d": Decimal(1)}) == []
