"""`python -m sql run` over a whole pipeline file and `python -m sql test DIR` (the offline test
runner), as real subprocesses: examples/orders/tests is run here, and cases that must fail do."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from core.codec import loads_exact

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "orders"
CASE = EXAMPLE / "tests" / "decisions"


def sql_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sql", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def case_inputs() -> list[str]:
    return [
        "--table",
        f"users={CASE / 'input/users.jsonl'}",
        "--table",
        f"limits={CASE / 'input/limits.jsonl'}",
        "--stream",
        f"orders={CASE / 'input/orders.jsonl'}",
        "--events",
        str(CASE / "events.jsonl"),
    ]


def test_run_accepts_the_demo_pipeline_and_tags_rows_by_query() -> None:
    done = sql_cli("run", "examples/orders/pipeline.sql", *case_inputs())
    assert done.returncode == 0, done.stderr
    rows = [loads_exact(line) for line in done.stdout.splitlines()]
    assert [next(iter(r)) for r in rows] == ["_query"] * len(rows)
    by_query = [r["_query"] for r in rows]
    # File order: every row of a query before the next query's.
    assert by_query == sorted(
        by_query, key=["checked_orders", "gold_orders", "volume_by_symbol"].index
    )
    checked = {r["order_id"]: r["status"] for r in rows if r["_query"] == "checked_orders"}
    assert checked == {
        1: "accepted",
        2: "blocked user",
        3: "over limit",
        4: "unknown symbol",
        5: "over limit",  # the limit was lowered to 170.00 before order 5
        6: "accepted",
    }
    gold = [r["order_id"] for r in rows if r["_query"] == "gold_orders"]
    assert gold == [1, 5, 6]  # user 3 became gold before order 6


def test_run_query_picks_one_query_untagged() -> None:
    done = sql_cli("run", "examples/orders/pipeline.sql", "--query", "gold_orders", *case_inputs())
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["order_id"] for r in rows] == [1, 5, 6]
    assert all("_query" not in r for r in rows)

    unknown = sql_cli("run", "examples/orders/pipeline.sql", "--query", "nope", *case_inputs())
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == (
        "error: no query named 'nope'; the file's queries: checked_orders, gold_orders, "
        "volume_by_symbol"
    )


def test_a_query_reading_another_querys_stream_gets_its_rows(tmp_path: Path) -> None:
    sql = tmp_path / "chain.sql"
    sql.write_text(
        "CREATE STREAM s (n BIGINT) WITH (topic='s');\n"
        "CREATE STREAM doubled WITH (topic='d') AS SELECT n * 2 AS m FROM s;\n"
        "CREATE STREAM big WITH (topic='b') AS SELECT m FROM doubled WHERE m > 4;\n"
    )
    records = tmp_path / "s.jsonl"
    records.write_text('{"n": 1}\n{"n": 2}\n{"n": 3}\n')
    done = sql_cli("run", str(sql), "--stream", f"s={records}")
    assert done.returncode == 0, done.stderr
    assert [json.loads(line) for line in done.stdout.splitlines()] == [
        {"_query": "doubled", "m": 2},
        {"_query": "doubled", "m": 4},
        {"_query": "doubled", "m": 6},
        {"_query": "big", "m": 6},
    ]


def test_the_example_cases_pass() -> None:
    done = sql_cli("test", "examples/orders/tests")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS examples/orders/tests/backlog (3 queries, 28 rows)" in done.stdout
    assert "PASS examples/orders/tests/decisions (3 queries, 15 rows)" in done.stdout
    assert done.stdout.splitlines()[-1] == "2 cases: 2 passed, 0 failed"


def test_the_backlog_case_needs_the_demos_out_of_orderness(tmp_path: Path) -> None:
    """Orders read partition after partition (a backlog) are out of event-time order by 15 s: the
    demo's 30 s out_of_orderness keeps them all; the former 2 s made valid orders late."""
    pipeline = (EXAMPLE / "pipeline.sql").read_text()
    assert "out_of_orderness='30s'" in pipeline
    (tmp_path / "pipeline.sql").write_text(pipeline.replace("'30s'", "'2s'"))
    shutil.copytree(EXAMPLE / "tests" / "backlog", tmp_path / "tests" / "backlog")
    done = sql_cli("test", str(tmp_path))
    assert done.returncode == 1
    assert "volume_by_symbol: record errors differ" in done.stdout
    late = [line for line in done.stdout.splitlines() if line.strip().startswith("+record")]
    assert len(late) == 4  # orders 5, 6, 9 and 10: the second and third partitions' first window
    assert all("late record" in line for line in late)


def test_a_wrong_row_fails_with_a_readable_diff(tmp_path: Path) -> None:
    # A copy of the example case next to a copy of the real pipeline, one expected status wrong.
    shutil.copy(EXAMPLE / "pipeline.sql", tmp_path / "pipeline.sql")
    case = tmp_path / "tests" / "decisions"
    shutil.copytree(CASE, case)
    expected = case / "expected" / "checked_orders.jsonl"
    expected.write_text(expected.read_text().replace('"status":"over limit"}', '"status":"ok"}', 1))
    (case / "expected" / "gold_orders.jsonl").unlink()
    done = sql_cli("test", str(tmp_path))
    assert done.returncode == 1
    out = done.stdout
    assert f"FAIL {case}" in out
    assert "  checked_orders: rows differ" in out
    assert "  --- expected/checked_orders.jsonl" in out
    diff = [line.strip() for line in out.splitlines() if line.strip()[:2] in ("-{", "+{")]
    assert len(diff) == 2
    assert diff[0].startswith('-{"order_id":3,')
    assert diff[0].endswith('"status":"ok"}')
    assert diff[1].startswith('+{"order_id":3,')
    assert diff[1].endswith('"status":"over limit"}')
    assert "no expected/gold_orders.jsonl; the query emitted 3 rows" in out
    assert out.splitlines()[-1] == "1 cases: 0 passed, 1 failed"


def test_record_errors_must_be_expected(tmp_path: Path) -> None:
    case = tmp_path / "div"
    (case / "input").mkdir(parents=True)
    (case / "expected").mkdir()
    (case / "pipeline.sql").write_text(
        "CREATE STREAM s (d BIGINT) WITH (topic='s');\n"
        "CREATE STREAM r WITH (topic='r') AS SELECT 10 / d AS q FROM s;\n"
    )
    (case / "input" / "s.jsonl").write_text('{"d": 2}\n{"d": 0}\n{"d": 5}\n')
    (case / "expected" / "r.jsonl").write_text('{"q": 5.0}\n{"q": 2.0}\n')
    failing = sql_cli("test", str(case))
    assert failing.returncode == 1
    assert "r: record errors differ" in failing.stdout
    assert "+record 2: division by zero" in failing.stdout

    (case / "expected" / "r.errors").write_text("record 2: division by zero\n")
    passing = sql_cli("test", str(case))
    assert passing.returncode == 0, passing.stdout
    assert f"PASS {case} (1 queries, 2 rows)" in passing.stdout


def test_broken_cases_fail_and_an_empty_dir_is_an_error(tmp_path: Path) -> None:
    case = tmp_path / "c"
    (case / "input").mkdir(parents=True)
    (case / "expected").mkdir()
    (case / "pipeline.sql").write_text(
        "CREATE STREAM s (d BIGINT) WITH (topic='s');\n"
        "CREATE STREAM r WITH (topic='r') AS SELECT e FROM s;\n"
    )
    (case / "input" / "t.jsonl").write_text("{}\n")
    done = sql_cli("test", str(case))
    assert done.returncode == 1
    assert "input/t.jsonl names no table or stream" in done.stdout
    (case / "input" / "t.jsonl").unlink()
    done = sql_cli("test", str(case))
    assert done.returncode == 1
    assert "line 2, column 44: unknown column 'e'" in done.stdout

    empty = sql_cli("test", str(tmp_path / "c" / "input"))
    assert empty.returncode == 2
    assert "no test cases under" in empty.stdout
