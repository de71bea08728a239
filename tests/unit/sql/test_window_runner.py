"""Windowed queries in the offline runner (``python -m sql run``): the rows in emission order,
open windows closed at end of input, late records reported, retractions marked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.sql_runner import run_cli, run_inproc, write
from tests.support.sql_windows import (
    SESSION_RECORDS,
    SESSION_SQL,
    TUMBLING_RECORDS,
    TUMBLING_SQL,
    compile_windowed,
    run,
)


def _files(tmp_path: Path, query: str, opts: str, records: list[Any]) -> list[str]:
    decl = (
        "CREATE STREAM ev (k VARCHAR, ts BIGINT, v BIGINT) "
        f"WITH (topic='ev', timestamp='ts'{opts});\n"
    )
    lines = "".join(json.dumps({"k": k, "ts": ts, "v": v}) + "\n" for k, ts, v in records)
    return [
        write(tmp_path, "q.sql", decl + query + ";\n"),
        "--stream",
        "ev=" + write(tmp_path, "ev.jsonl", lines),
    ]


def _expected(query: str, opts: str, records: list[Any]) -> list[Any]:
    """What the compiled query emits in-process (checked exactly in test_windows), flattened."""
    per_record, final = run(compile_windowed(query, opts), records)
    rows = [r for out in per_record if out != "late" for r in out] + final
    return [{**r[1], "_retract": True} if isinstance(r, tuple) else r for r in rows]


def test_tumbling_emit_final_through_the_cli(tmp_path: Path) -> None:
    query, opts = TUMBLING_SQL.format(emit="FINAL"), ", out_of_orderness='2s'"
    done = run_cli(_files(tmp_path, query, opts, TUMBLING_RECORDS))
    assert done.returncode == 1  # two late records
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert rows == _expected(query, opts, TUMBLING_RECORDS)
    assert rows[-2:] == [  # the windows still open at end of input, in close order
        {"k": "c", "n": 1, "s": 8, "window_start": 10000, "window_end": 15000},
        {"k": "b", "n": 1, "s": 10, "window_start": 10000, "window_end": 15000},
    ]
    errors = done.stderr.splitlines()
    assert [e.split(":")[0] for e in errors] == ["record 6", "record 11"]
    assert all("late record" in e for e in errors)


def test_session_retractions_are_marked(tmp_path: Path) -> None:
    query, opts = SESSION_SQL.format(emit="CHANGES"), ", out_of_orderness='20s'"
    code, out, err = run_inproc(_files(tmp_path, query, opts, SESSION_RECORDS))
    assert code == 1
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows == _expected(query, opts, SESSION_RECORDS)
    assert sum(1 for r in rows if r.get("_retract")) == 3
    assert err.count("late record") == 1


def test_explain_shows_the_window(tmp_path: Path) -> None:
    query = TUMBLING_SQL.format(emit="FINAL")
    code, out, _ = run_inproc([*_files(tmp_path, query, "", []), "--explain"])
    assert code == 0
    assert "Window TUMBLING(5s) GRACE 1s ON ts" in out
