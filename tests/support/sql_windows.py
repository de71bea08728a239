"""Windowed queries driven record by record, and the tumbling and session sequences whose
outputs tests/unit/sql/test_windows.py asserts exactly (test_window_runner runs the same through
the offline runner; a test module is no library: both import these from here)."""

from __future__ import annotations

from typing import Any

from sql import Catalog, CompiledQuery, LateRecordError, Retraction, compile_query

STREAM = (
    "CREATE STREAM ev (k VARCHAR, ts BIGINT, v BIGINT) WITH (topic='ev', timestamp='ts'{opts});\n"
)

Rec = tuple[str, int, int]
Out = list[Any]  # per record: its rows, or "late"


def compile_windowed(query: str, opts: str = "") -> CompiledQuery:
    return compile_query(STREAM.format(opts=opts) + query, Catalog())


def run(q: CompiledQuery, records: list[Rec]) -> tuple[Out, list[dict[str, Any]]]:
    """Rows per record (``"late"`` for a LateRecordError), then the rows of ``finish()``."""
    out: Out = []
    for k, ts, v in records:
        try:
            out.append([tagged(r) for r in q.process({"k": k, "ts": ts, "v": v})])
        except LateRecordError as err:
            out.append("late" if (err.fields["reason"], err.rows) == ("late", []) else err)
    return out, [tagged(r) for r in q.finish()]


def tagged(row: dict[str, Any]) -> Any:
    return ("retract", dict(row)) if isinstance(row, Retraction) else dict(row)


# --- tumbling ---------------------------------------------------------------------------------
# TUMBLING 5s, GRACE 1s, out_of_orderness 2s: a window [s, s+5000) closes at watermark s+6000.
TUMBLING_RECORDS: list[Rec] = [
    ("a", 1000, 1),  # W -1000
    ("b", 2000, 2),  # W 0
    ("a", 6000, 3),  # W 4000
    ("a", 4000, 4),  # out of order, [0,5000) still open
    ("b", 8500, 5),  # W 6500: closes [0,5000) for a and b
    ("a", 4500, 6),  # late: [0,5000) closed
    ("a", 9000, 7),  # W 7000
    ("c", 12000, 8),  # W 10000
    ("a", 5500, 9),  # [5000,10000) open until W 11000 (grace)
    ("b", 13000, 10),  # W 11000: closes [5000,10000)
    ("a", 4000, 1),  # late
]
TUMBLING_SQL = (
    "SELECT k, COUNT(*) AS n, SUM(v) AS s FROM ev "
    "WINDOW TUMBLING (SIZE 5 SECONDS, GRACE PERIOD 1 SECOND) GROUP BY k EMIT {emit}"
)


# --- session ----------------------------------------------------------------------------------
# SESSION 10s, out_of_orderness 20s: a session [s, e] closes when W > e + 10000.
SESSION_RECORDS: list[Rec] = [
    ("a", 0, 1),  # S1 [0,0]; W -20000
    ("a", 25000, 2),  # S2 [25000,25000]; W 5000
    ("a", 12000, 3),  # S3 [12000,12000] (more than 10s from both)
    ("a", 6000, 4),  # bridges S1 and S3 -> [0,12000]
    ("a", 18000, 5),  # bridges [0,12000] and S2 -> [0,25000]
    ("b", 50000, 6),  # W 30000
    ("a", -5000, 7),  # extends a's session to the left: [-5000,25000]
    ("b", 60000, 8),  # W 40000 closes a's session (25000 + 10000 < 40000)
    ("a", 20000, 9),  # its session [20000,20000] would already be closed: late
    ("a", 31000, 10),  # a new session (the closed one is never reopened)
]
SESSION_SQL = (
    "SELECT k, COUNT(*) AS n, SUM(v) AS s FROM ev "
    "WINDOW SESSION (10 SECONDS) GROUP BY k EMIT {emit}"
)
