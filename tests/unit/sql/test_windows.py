"""Windows on event time: exact EMIT CHANGES / EMIT FINAL outputs for fixed sequences with
out-of-order and late records (tumbling, hopping, session), late='update', keys, syntax.

The expected rows were worked out by hand from the documented rules (docs/SQL.md, "Windows and
time"); each sequence's comments give the watermark after every record.
"""

from __future__ import annotations

from typing import Any

import pytest

from sql import Catalog, DivisionByZeroError, LateRecordError, compile_query
from sql.errors import EventTimeError
from tests.support.sql_windows import (
    SESSION_RECORDS,
    SESSION_SQL,
    STREAM,
    TUMBLING_RECORDS,
    TUMBLING_SQL,
    Rec,
    compile_windowed,
    run,
)


def row(k: str, n: int, s: int | None, start: int, end: int) -> dict[str, Any]:
    r: dict[str, Any] = {"k": k, "n": n}
    if s is not None:
        r["s"] = s
    r.update(window_start=start, window_end=end)
    return r


# --- tumbling (TUMBLING_RECORDS: see tests/support/sql_windows.py) ---------------------------
def test_tumbling_emit_final() -> None:
    q = compile_windowed(TUMBLING_SQL.format(emit="FINAL"), ", out_of_orderness='2s'")
    out, final = run(q, TUMBLING_RECORDS)
    assert out == [
        [],
        [],
        [],
        [],
        [row("a", 2, 5, 0, 5000), row("b", 1, 2, 0, 5000)],
        "late",
        [],
        [],
        [],
        [row("a", 3, 19, 5000, 10000), row("b", 1, 5, 5000, 10000)],
        "late",
    ]
    assert final == [row("c", 1, 8, 10000, 15000), row("b", 1, 10, 10000, 15000)]
    assert q.watermark == 11000


def test_tumbling_emit_changes() -> None:
    q = compile_windowed(TUMBLING_SQL.format(emit="CHANGES"), ", out_of_orderness='2s'")
    out, final = run(q, TUMBLING_RECORDS)
    assert out == [
        [row("a", 1, 1, 0, 5000)],
        [row("b", 1, 2, 0, 5000)],
        [row("a", 1, 3, 5000, 10000)],
        [row("a", 2, 5, 0, 5000)],
        [row("b", 1, 5, 5000, 10000)],
        "late",
        [row("a", 2, 10, 5000, 10000)],
        [row("c", 1, 8, 10000, 15000)],
        [row("a", 3, 19, 5000, 10000)],
        [row("b", 1, 10, 10000, 15000)],
        "late",
    ]
    assert final == []


@pytest.mark.parametrize(
    "window",
    ["TUMBLING (SIZE 5 SECONDS, GRACE PERIOD 1 SECOND)", "HOPPING(10s, 5s)", "SESSION(2s)"],
)
def test_a_window_without_emit_emits_once_per_window_when_it_closes(window: str) -> None:
    """No EMIT clause on a windowed aggregate means EMIT FINAL (Flink SQL, Spark, the original
    system): nothing per record, each window's row once the watermark passes end + grace."""
    query = f"SELECT k, COUNT(*) AS n, SUM(v) AS s FROM ev WINDOW {window} GROUP BY k"
    implicit = compile_windowed(query, ", out_of_orderness='2s'")
    final = compile_windowed(query + " EMIT FINAL", ", out_of_orderness='2s'")
    assert (implicit.emit, final.emit) == ("final", "final")
    got, want = run(implicit, TUMBLING_RECORDS), run(final, TUMBLING_RECORDS)
    assert got == want
    per_record, at_end = got
    assert per_record[:2] == [[], []]  # no row before a window closes
    assert sum(len(r) for r in per_record if r != "late") + len(at_end) > 0


def test_no_emit_without_a_window_still_emits_per_record() -> None:
    q = compile_windowed("SELECT k, COUNT(*) AS n FROM ev GROUP BY k")
    assert q.emit == "changes"
    assert q.process({"k": "a", "ts": 1, "v": 1}) == [{"k": "a", "n": 1}]
    assert q.process({"k": "a", "ts": 2, "v": 1}) == [{"k": "a", "n": 2}]
    assert q.finish() == []


def test_late_record_error_fields() -> None:
    q = compile_windowed(TUMBLING_SQL.format(emit="FINAL"), ", out_of_orderness='2s'")
    for k, ts, v in TUMBLING_RECORDS[:5]:
        q.process({"k": k, "ts": ts, "v": v}, partition=3, offset=41)
    with pytest.raises(LateRecordError) as info:
        q.process({"k": "a", "ts": 4500, "v": 6}, partition=3, offset=42)
    f = info.value.fields
    assert (f["reason"], f["event_time"], f["window"], f["watermark"], f["grace"]) == (
        "late",
        4500,
        {"start": 0, "end": 5000},
        6500,
        1000,
    )
    assert (f["partition"], f["offset"], f["record"]) == (3, 42, {"k": "a", "ts": 4500, "v": 6})
    assert "late record" in str(info.value)
    assert "[0, 5000)" in str(info.value)


def test_tumbling_late_update_re_emits() -> None:
    """late='update': a closed window takes the late record for RETENTION (default: its size)."""
    for emit in ("FINAL", "CHANGES"):
        q = compile_windowed(
            TUMBLING_SQL.format(emit=emit),
            ", out_of_orderness='2s', late='update'",
        )
        out, _ = run(q, TUMBLING_RECORDS)
        # record 6 updates the closed [0,5000) of a and re-emits its corrected row (both modes)
        assert out[5] == [row("a", 3, 11, 0, 5000)]
        # record 11 comes after [0,5000) was dropped (W 11000 >= 6000 + 5000): late after all
        assert out[10] == "late"


def test_late_update_on_the_sink_overrides_the_stream() -> None:
    q = compile_query(
        STREAM.format(opts=", out_of_orderness='2s'")
        + "CREATE TABLE t WITH (topic='t', late='update') AS "
        + TUMBLING_SQL.format(emit="FINAL"),
        Catalog(),
    )
    out, _ = run(q, TUMBLING_RECORDS)
    assert out[5] == [row("a", 3, 11, 0, 5000)]


# --- hopping ----------------------------------------------------------------------------------
HOPPING_RECORDS: list[Rec] = [
    ("a", 1000, 1),  # windows [-5000,5000) and [0,10000); W 1000
    ("a", 7000, 1),  # W 7000 closes [-5000,5000)
    ("a", 3000, 1),  # [-5000,5000) closed (skipped), [0,10000) open: counted there
    ("a", 16000, 1),  # W 16000 closes [0,10000) and [5000,15000)
    ("a", 4000, 1),  # both its windows closed: late
]
HOPPING_SQL = "SELECT k, COUNT(*) AS n FROM ev WINDOW HOPPING(10s, 5s) GROUP BY k EMIT {emit}"


def test_hopping_emit_final() -> None:
    q = compile_windowed(HOPPING_SQL.format(emit="FINAL"))
    out, final = run(q, HOPPING_RECORDS)
    assert out == [
        [],
        [row("a", 1, None, -5000, 5000)],
        [],
        [row("a", 3, None, 0, 10000), row("a", 1, None, 5000, 15000)],
        "late",
    ]
    assert final == [row("a", 1, None, 10000, 20000), row("a", 1, None, 15000, 25000)]
    assert q.late_drops == 1


def test_hopping_emit_changes() -> None:
    q = compile_windowed(HOPPING_SQL.format(emit="CHANGES"))
    out, final = run(q, HOPPING_RECORDS)
    assert out == [
        [row("a", 1, None, -5000, 5000), row("a", 1, None, 0, 10000)],
        [row("a", 2, None, 0, 10000), row("a", 1, None, 5000, 15000)],
        [row("a", 3, None, 0, 10000)],
        [row("a", 1, None, 10000, 20000), row("a", 1, None, 15000, 25000)],
        "late",
    ]
    assert final == []


# --- session (SESSION_RECORDS: see tests/support/sql_windows.py) -----------------------------
def test_session_emit_changes_with_merges_and_retractions() -> None:
    q = compile_windowed(SESSION_SQL.format(emit="CHANGES"), ", out_of_orderness='20s'")
    out, final = run(q, SESSION_RECORDS)
    assert out == [
        [row("a", 1, 1, 0, 0)],
        [row("a", 1, 2, 25000, 25000)],
        [row("a", 1, 3, 12000, 12000)],
        [("retract", row("a", 1, 3, 12000, 12000)), row("a", 3, 8, 0, 12000)],
        [("retract", row("a", 1, 2, 25000, 25000)), row("a", 5, 15, 0, 25000)],
        [row("b", 1, 6, 50000, 50000)],
        [("retract", row("a", 5, 15, 0, 25000)), row("a", 6, 22, -5000, 25000)],
        [row("b", 2, 14, 50000, 60000)],
        "late",
        [row("a", 1, 10, 31000, 31000)],
    ]
    assert final == []


def test_session_emit_final() -> None:
    q = compile_windowed(SESSION_SQL.format(emit="FINAL"), ", out_of_orderness='20s'")
    out, final = run(q, SESSION_RECORDS)
    assert out == [[], [], [], [], [], [], [], [row("a", 6, 22, -5000, 25000)], "late", []]
    assert final == [row("a", 1, 10, 31000, 31000), row("b", 2, 14, 50000, 60000)]


def test_session_late_error_names_the_session() -> None:
    q = compile_windowed(SESSION_SQL.format(emit="FINAL"), ", out_of_orderness='20s'")
    for k, ts, v in SESSION_RECORDS[:8]:
        q.process({"k": k, "ts": ts, "v": v})
    with pytest.raises(LateRecordError) as info:
        q.process({"k": "a", "ts": 20000, "v": 9})
    assert info.value.fields["window"] == {"start": 20000, "end": 20000}
    assert "session [20000, 20000]" in str(info.value)


# --- time -------------------------------------------------------------------------------------
def test_watermark_advances_on_records_where_drops() -> None:
    q = compile_windowed(
        "SELECT k, COUNT(*) AS n FROM ev WINDOW TUMBLING(5s) WHERE v > 0 GROUP BY k EMIT FINAL"
    )
    assert q.process({"k": "a", "ts": 1000, "v": 1}) == []
    # v = 0 is filtered out, but its event time still closes [0,5000)
    assert q.process({"k": "a", "ts": 7000, "v": 0}) == [row("a", 1, None, 0, 5000)]


def test_rows_of_closed_windows_survive_a_failing_record() -> None:
    q = compile_windowed(
        "SELECT k, SUM(v) AS n FROM ev WINDOW TUMBLING(5s) WHERE 10 / v > 0 GROUP BY k EMIT FINAL"
    )
    q.process({"k": "a", "ts": 1000, "v": 1})
    with pytest.raises(DivisionByZeroError) as info:  # after the watermark moved
        q.process({"k": "a", "ts": 7000, "v": 0})
    assert info.value.rows == [row("a", 1, None, 0, 5000)]


def test_event_time_sources() -> None:
    # the window's field argument wins over the stream's timestamp field
    q = compile_windowed(
        "SELECT k, COUNT(*) AS n FROM ev WINDOW TUMBLING(5s, v) GROUP BY k EMIT CHANGES"
    )
    assert q.process({"k": "a", "ts": 1, "v": 6000})[0]["window_start"] == 5000
    # ISO text and the record timestamp
    q = compile_windowed(
        "SELECT v, COUNT(*) AS n FROM ev WINDOW TUMBLING(1m, k) GROUP BY v EMIT CHANGES"
    )
    assert q.process({"k": "1970-01-01T00:02:30Z", "v": 1})[0]["window_start"] == 120_000
    q = compile_windowed(
        "SELECT k, COUNT(*) AS n FROM ev WINDOW TUMBLING(1s, _timestamp) GROUP BY k EMIT CHANGES"
    )
    assert q.process({"k": "a", "ts": 1}, timestamp=2500)[0]["window_start"] == 2000
    with pytest.raises(EventTimeError) as info:
        q.process({"k": "a"}, timestamp=None)
    assert info.value.fields["reason"] == "no event time"
    q = compile_windowed("SELECT k, COUNT(*) AS n FROM ev WINDOW TUMBLING(1s) GROUP BY k")
    with pytest.raises(EventTimeError, match="field 'ts'"):
        q.process({"k": "a", "ts": None})


# --- keys and metadata ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "keys"),
    [
        ("SELECT k, COUNT(*) AS n FROM ev WINDOW TUMBLING(5s) GROUP BY k", ("k", "window_start")),
        (
            "SELECT k AS key, window_start AS ws, COUNT(*) AS n FROM ev "
            "WINDOW TUMBLING(5s) GROUP BY k",
            ("key", "ws"),
        ),
        ("SELECT k, COUNT(*) AS n FROM ev GROUP BY k", ("k",)),
        ("SELECT COUNT(*) AS n FROM ev", ()),
        ("SELECT k, v FROM ev", ()),
    ],
)
def test_key_columns(query: str, keys: tuple[str, ...]) -> None:
    assert compile_windowed(query).key_columns == keys


def test_window_columns_are_appended_and_readable_in_having() -> None:
    q = compile_windowed(
        "SELECT k, COUNT(*) AS n FROM ev WINDOW TUMBLING(5s) GROUP BY k "
        "HAVING window_start >= 5000 EMIT CHANGES"
    )
    assert q.output_columns == ("k", "n", "window_start", "window_end")
    assert q.process({"k": "a", "ts": 1000, "v": 1}) == []
    assert q.process({"k": "a", "ts": 5000, "v": 1}) == [row("a", 1, None, 5000, 10000)]
    assert (q.is_windowed, q.emit) == (True, "changes")


def test_primary_key_of_a_stream_sink() -> None:
    q = compile_query(
        STREAM.format(opts="")
        + "CREATE STREAM out (k VARCHAR, v BIGINT, PRIMARY KEY (k)) WITH (topic='o') AS "
        "SELECT k, v FROM ev",
        Catalog(),
    )
    assert q.key_columns == ("k",)
    assert not q.is_windowed
    assert q.watermark is None
    assert q.dirty_state() == {}
