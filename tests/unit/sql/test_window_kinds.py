"""A kind of window is one :func:`sql.window_kinds.register_window_kind` call.

The toy kind here, ``SHIFTED(size)``, is registered by this test only — nothing else in sql/
knows it — and runs end to end through the offline runner (``python -m sql run`` in-process):
both spellings of the WINDOW clause, its operator assigning records to windows, EXPLAIN, late
records, and the parse errors naming it. Its windows are tumbling windows shifted by half their
size (``[k·S + S/2, (k+1)·S + S/2)``), so its rows cannot come from a built-in kind by mistake.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sql.operators.aggregate import Row
from sql.operators.window import Win
from sql.operators.window_time import TimeWindowAggregate
from sql.runtime import Env
from sql.window_kinds import WINDOW_KINDS, WindowKind, register_window_kind
from tests.support.sql_runner import run_inproc, write

DECL = "CREATE STREAM ev (k VARCHAR, ts BIGINT, v BIGINT) WITH (topic='ev', timestamp='ts');\n"
QUERY = "SELECT k, COUNT(*) AS n, SUM(v) AS s FROM ev WINDOW {window} GROUP BY k EMIT FINAL"
#: (k, ts, v): with SHIFTED(10s) the windows are [-5000, 5000), [5000, 15000), [15000, 25000).
RECORDS = [("a", 1000, 1), ("a", 4999, 2), ("a", 5000, 4), ("b", 7000, 8), ("a", 16000, 16)]


class ShiftedWindows(TimeWindowAggregate):
    """Tumbling windows of SIZE, starting half a size after the epoch-aligned ones: its own
    ``assign``; the window index (``insert``/``remove``) and ``close_due`` are tumbling's."""

    prefix = "x:"

    def assign(
        self, env: Env, gk: tuple[Any, ...], t: int, vals: list[Any], out: list[Row]
    ) -> None:
        half = self.size // 2
        start = (t - half) // self.size * self.size + half
        due, w = start + self.size + self.grace, self.watermark
        assert w is not None
        if w >= due + self.retention:
            raise self.late(t, start, start + self.size, due)
        win = self.windows.get((gk, start))
        if win is None:
            win = Win(gk, start, start + self.size, self.new_accumulators(), self.next_seq())
            self.insert(win)
            self.schedule(win, w >= due)
        self.update(env, win, vals, out)


@pytest.fixture
def shifted() -> Iterator[WindowKind]:
    kind = register_window_kind(WindowKind("SHIFTED", ("size",), ShiftedWindows))
    try:
        yield kind
    finally:
        del WINDOW_KINDS["SHIFTED"]


def _run(tmp_path: Path, window: str, *extra: str, records: Any = RECORDS) -> tuple[int, str, str]:
    lines = "".join(json.dumps({"k": k, "ts": ts, "v": v}) + "\n" for k, ts, v in records)
    query = write(tmp_path, "q.sql", DECL + QUERY.format(window=window) + ";\n")
    stream = "ev=" + write(tmp_path, "ev.jsonl", lines)
    return run_inproc([query, "--stream", stream, *extra])


def _rows(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


EXPECTED = [  # in close order; the open windows at end of input in creation order
    {"k": "a", "n": 2, "s": 3, "window_start": -5000, "window_end": 5000},
    {"k": "a", "n": 1, "s": 4, "window_start": 5000, "window_end": 15000},
    {"k": "b", "n": 1, "s": 8, "window_start": 5000, "window_end": 15000},
    {"k": "a", "n": 1, "s": 16, "window_start": 15000, "window_end": 25000},
]


def test_unknown_until_registered(tmp_path: Path) -> None:
    code, _, err = _run(tmp_path, "SHIFTED(10s)")
    assert code == 2
    assert "unknown window type 'SHIFTED' (expected TUMBLING, HOPPING or SESSION)" in err


def test_a_registered_kind_runs_end_to_end(tmp_path: Path, shifted: WindowKind) -> None:
    code, out, err = _run(tmp_path, "SHIFTED(10s)")
    assert (code, err) == (0, "")
    assert _rows(out) == EXPECTED
    # The ksqlDB spelling reads the same durations.
    code, out, err = _run(tmp_path, "SHIFTED (SIZE 10 SECONDS, GRACE PERIOD 0 SECONDS)")
    assert (code, err, _rows(out)) == (0, "", EXPECTED)


def test_its_late_records_and_explain(tmp_path: Path, shifted: WindowKind) -> None:
    late = [*RECORDS, ("a", 4000, 32)]  # [-5000, 5000) closed when 16000 came
    code, out, err = _run(tmp_path, "SHIFTED(10s)", records=late)
    assert code == 1
    assert _rows(out) == EXPECTED
    assert err.startswith("record 6: late record: event time 4000 falls in [-5000, 5000)")
    code, out, _ = _run(tmp_path, "SHIFTED(10s, GRACE 1s, RETENTION 1m)", "--explain")
    assert code == 0
    assert "Window SHIFTED(10s) GRACE 1s RETENTION 1m ON ts" in out


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ("SHIFTED(10s, 2s)", "unexpected duration in a SHIFTED window"),
        ("SHIFTED(GRACE 1s)", "SHIFTED window needs a SIZE"),
        ("SHIFTED(0s)", "SIZE must be positive, got 0 ms"),
        ("SHIFTED(SIZE 10s, ADVANCE BY 1s)", "unexpected ADVANCE in a SHIFTED window"),
        ("SHIFTY(10s)", "unknown window type 'SHIFTY' (expected TUMBLING, HOPPING, SESSION or"),
    ],
)
def test_its_errors(tmp_path: Path, shifted: WindowKind, window: str, message: str) -> None:
    code, out, err = _run(tmp_path, window)
    assert (code, out) == (2, "")
    assert message in err
    assert "line 2, column" in err


def test_a_kind_is_registered_once(shifted: WindowKind) -> None:
    with pytest.raises(ValueError, match="window kind SHIFTED registered twice"):
        register_window_kind(WindowKind("shifted", ("size",), ShiftedWindows))
    with pytest.raises(ValueError, match="durations"):
        register_window_kind(WindowKind("ODD", ("width",), ShiftedWindows))
