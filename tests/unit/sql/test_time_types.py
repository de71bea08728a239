"""``_event_time`` and ``_timestamp`` are TIMESTAMP(3) UTC: golden cases for the time types.

The original request's query (``w.effective_date <= m._event_time``), exact day boundaries,
INTERVAL arithmetic, processing time (NOW), the epoch-millisecond functions and the type error
(with its hint) for a BIGINT against a timestamp. DuckDB agrees on the values
(``test_differential.py::test_time_types_match_duckdb``); these pin the contract.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import pytest

from sql import CastError, Catalog, SqlTypeError, compile_query
from sql.runner import main
from sql.types import BIGINT, TIMESTAMP
from tables.memory import MemoryTable

DECLS = (
    "CREATE TABLE w (id BIGINT, effective_date DATE, rate DECIMAL(6,2), PRIMARY KEY (id))"
    " WITH (topic='w');\n"
    "CREATE STREAM m (id BIGINT, ts BIGINT) WITH (topic='m', timestamp='ts');\n"
)
DEC_31 = 1_798_675_200_000  # 2026-12-31T00:00:00Z in epoch ms


def rates() -> MemoryTable:
    w = MemoryTable("w", key_field="id")
    w.put_row({"id": 1, "effective_date": "2026-12-30", "rate": "1.00"})
    w.put_row({"id": 2, "effective_date": "2026-12-31", "rate": "2.00"})
    w.put_row({"id": 3, "effective_date": "2027-01-01", "rate": "3.00"})
    return w


def test_the_original_requests_query_compiles_and_is_right_at_day_boundaries() -> None:
    """The rate in force at the record's event time: the latest effective date on or before it."""
    q = compile_query(
        DECLS + "SELECT m.id, (SELECT MAX(w.effective_date) FROM w"
        " WHERE w.effective_date <= m._event_time) AS day FROM m",
        Catalog.of({"w": rates()}),
    )
    at = {
        DEC_31 - 1: dt.date(2026, 12, 30),  # 23:59:59.999 on the 30th
        DEC_31: dt.date(2026, 12, 31),  # midnight: the 31st is in force
        DEC_31 + 1: dt.date(2026, 12, 31),
        DEC_31 + 86_400_000 - 1: dt.date(2026, 12, 31),
        DEC_31 + 86_400_000: dt.date(2027, 1, 1),
    }
    for ts, day in at.items():
        assert q.process({"id": 1, "ts": ts}) == [{"id": 1, "day": day}], ts


@pytest.mark.parametrize(
    ("expr", "want"),
    [
        ("DATE '2026-12-31' < TIMESTAMP '2026-12-31 00:00:00.001'", True),
        ("DATE '2026-12-31' = TIMESTAMP '2026-12-31 00:00:00'", True),
        ("DATE '2026-12-31' > TIMESTAMP '2026-12-30 23:59:59.999'", True),
        ("m._event_time = TIMESTAMP '2026-12-31 00:00:00.001'", True),
        ("m._event_time > DATE '2026-12-31'", True),
        ("m._event_time - INTERVAL '1' MILLISECOND = DATE '2026-12-31'", True),
        ("m._event_time - INTERVAL '1' HOUR < DATE '2026-12-31'", True),
        ("CAST(m._event_time AS DATE) = DATE '2026-12-31'", True),
        ("m._timestamp = TIMESTAMP '1970-01-01 00:00:01'", True),
        ("m._event_time > m._timestamp", True),
        ("m._event_time = TIMESTAMP '2026-12-31T00:00:00.001Z'", True),
        ("m._event_time = TIMESTAMP '2026-12-31 01:00:00.001+01:00'", True),
    ],
)
def test_event_time_compares_with_dates_timestamps_and_literals(expr: str, want: bool) -> None:
    q = compile_query(DECLS + f"SELECT {expr} AS b FROM m", Catalog.of({"w": rates()}))
    assert q.process({"id": 1, "ts": DEC_31 + 1}, timestamp=1000) == [{"b": want}]


def test_types_and_values_of_the_time_columns() -> None:
    q = compile_query(
        DECLS + "SELECT m._event_time AS e, m._timestamp AS t, m._event_time - INTERVAL '1' HOUR"
        " AS h, UNIX_MILLIS(m._event_time) AS ms, m._event_time - m._timestamp AS lag FROM m",
        Catalog.of({"w": rates()}),
    )
    assert q.output_types[:4] == (TIMESTAMP, TIMESTAMP, TIMESTAMP, BIGINT)
    (row,) = q.process({"id": 1, "ts": DEC_31 + 123}, timestamp=DEC_31 + 1123)
    assert row == {
        "e": dt.datetime(2026, 12, 31, 0, 0, 0, 123_000),
        "t": dt.datetime(2026, 12, 31, 0, 0, 1, 123_000),
        "h": dt.datetime(2026, 12, 30, 23, 0, 0, 123_000),
        "ms": DEC_31 + 123,
        "lag": dt.timedelta(seconds=-1),
    }


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("2026-12-31T00:00:00.5Z", dt.datetime(2026, 12, 31, 0, 0, 0, 500_000)),
        ("2026-12-31T01:00:00+01:00", dt.datetime(2026, 12, 31)),
        ("2026-12-31", dt.datetime(2026, 12, 31)),
        (str(DEC_31), dt.datetime(2026, 12, 31)),
        (None, None),
    ],
)
def test_event_time_fields_in_other_forms(value: Any, want: dt.datetime | None) -> None:
    q = compile_query(
        "CREATE STREAM m (id BIGINT, ts VARCHAR) WITH (topic='m', timestamp='ts');\n"
        "SELECT m._event_time AS e FROM m",
        Catalog(),
    )
    assert q.process({"id": 1, "ts": value}) == [{"e": want}]
    with pytest.raises(CastError):
        q.process({"id": 1, "ts": "soon"})


@pytest.mark.parametrize(
    ("query", "at"),
    [
        ("SELECT m.id FROM m WHERE m.ts > m._event_time", "m.ts >"),
        ("SELECT m.id FROM m WHERE m._timestamp <= 1700000000000", "m._timestamp <="),
        ("SELECT m.id FROM m WHERE m._event_time BETWEEN 0 AND m.ts", "m._event_time BETWEEN"),
        ("SELECT (SELECT w.rate FROM w WHERE w.id = m._event_time) FROM m", "w.id = m."),
    ],
)
def test_a_bigint_against_a_timestamp_is_a_compile_error_naming_the_functions(
    query: str, at: str
) -> None:
    sql = DECLS + query
    with pytest.raises(SqlTypeError) as info:
        compile_query(sql, Catalog.of({"w": rates()}))
    err = info.value
    assert "cannot apply" in err.reason
    assert "TIMESTAMP_MILLIS(" in err.reason
    assert "UNIX_MILLIS(" in err.reason
    offset = sql.index(at)
    assert (err.line, err.column) == (3, offset - sql.rindex("\n", 0, offset))


def test_the_hinted_functions_fix_the_query() -> None:
    q = compile_query(
        DECLS + "SELECT m.id FROM m WHERE TIMESTAMP_MILLIS(m.ts) >= m._event_time"
        " AND m.ts = UNIX_MILLIS(m._event_time) AND EPOCH_MS(m.ts) = m._event_time"
        " AND EPOCH_MS(m._event_time) = m.ts",
        Catalog.of({"w": rates()}),
    )
    assert q.process({"id": 7, "ts": DEC_31 + 5}) == [{"id": 7}]
    assert q.process({"id": 8, "ts": None}) == []


def test_now_is_processing_time() -> None:
    q = compile_query(
        DECLS + "SELECT NOW() AS n, CURRENT_TIMESTAMP AS c, NOW() > m._event_time AS after FROM m",
        Catalog.of({"w": rates()}),
    )
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(milliseconds=1)
    (row,) = q.process({"id": 1, "ts": 0})
    after = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    assert before <= row["n"] <= after
    assert before <= row["c"] <= after
    assert row["n"].microsecond % 1000 == 0  # TIMESTAMP(3)
    assert row["after"] is True
    # not the event time, and not frozen at compile time
    (later,) = q.process({"id": 2, "ts": DEC_31 * 2})
    assert later["after"] is False
    assert later["n"] >= row["n"]


def test_windows_still_read_event_time_in_milliseconds() -> None:
    """Windows and watermarks keep epoch milliseconds inside (``window_start`` stays BIGINT);
    AS OF ``o._event_time`` is covered by test_temporal.py."""
    sql = (
        "CREATE STREAM m (sku VARCHAR, ts BIGINT) WITH (topic='m', timestamp='ts');\n"
        "SELECT m.sku, COUNT(*) AS n FROM m WINDOW TUMBLING(1d) GROUP BY m.sku"
    )
    q = compile_query(sql, Catalog())
    assert q.emit == "final"
    assert q.process({"sku": "a", "ts": DEC_31}) == []
    assert q.process({"sku": "a", "ts": DEC_31 + 86_400_000}) == [
        {"sku": "a", "n": 1, "window_start": DEC_31, "window_end": DEC_31 + 86_400_000}
    ]


def test_the_runner_prints_event_time_as_iso_text(tmp_path: Path) -> None:
    query = tmp_path / "q.sql"
    query.write_text(
        DECLS + "SELECT m.id, m._event_time AS e, m._event_time - INTERVAL '1' DAY AS d FROM m;\n",
        encoding="utf-8",
    )
    stream = tmp_path / "m.jsonl"
    stream.write_text(json.dumps({"id": 1, "ts": DEC_31 + 1}) + "\n", encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    code = main(["run", str(query), "--stream", f"m={stream}"], out=out, err=err)
    assert code == 0, err.getvalue()
    assert json.loads(out.getvalue()) == {
        "id": 1,
        "e": "2026-12-31T00:00:00.001000",
        "d": "2026-12-30T00:00:00.001000",
    }


def test_a_date_equals_a_timestamp_at_its_midnight_in_every_plan() -> None:
    """Python never equates ``date`` and ``datetime``; SQL does at midnight. The hash-based
    plans (index probe over DATE text, maintained IN-set, constant IN list) agree with a scan."""
    sql = (
        DECLS + "SELECT (SELECT COUNT(*) FROM w WHERE w.effective_date = m._event_time) AS probe,"
        " (SELECT COUNT(*) FROM w WHERE w.effective_date + INTERVAL 0 DAY = m._event_time)"
        " AS scan, m._event_time IN (SELECT effective_date FROM w) AS in_set,"
        " m._event_time IN (DATE '2026-12-31', DATE '2027-01-01') AS in_list FROM m"
    )
    q = compile_query(sql, Catalog.of({"w": rates()}))
    plan = q.explain()
    assert "index probe" in plan
    assert "FULL SCAN" in plan
    assert "maintained IN-set" in plan
    for ts, hit in [(DEC_31, True), (DEC_31 + 1, False), (DEC_31 + 86_400_000, True)]:
        n = int(hit)
        assert q.process({"id": 1, "ts": ts}) == [
            {"probe": n, "scan": n, "in_set": hit, "in_list": hit}
        ], ts
    q.close()
