"""`faust -A app ...` as users run it (a real subprocess each): `sql explain`, `tables` without a
worker, and what a bad setting or a broken pipeline file does to every command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.broker import free_port
from tests.support.worker import ROOT

FAUST = str(Path(sys.executable).parent / "faust")
PIPELINE = """\
CREATE TABLE users (id BIGINT PRIMARY KEY, tier VARCHAR) WITH (topic='users');
CREATE STREAM orders (id BIGINT, user_id BIGINT) WITH (topic='orders');
CREATE STREAM gold WITH (topic='gold') AS
SELECT o.id FROM orders o WHERE o.user_id IN (SELECT id FROM users WHERE tier = 'gold');
CREATE TABLE counts AS SELECT user_id, COUNT(*) AS n FROM orders GROUP BY user_id;
"""
BROKEN = (
    "CREATE TABLE users (id BIGINT PRIMARY KEY, tier VARCHAR) WITH (topic='users');\nSELEC 1;\n"
)


def faust(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TABLESTREAM_")}
    return subprocess.run(
        [FAUST, "-A", "app", *args],
        cwd=ROOT,
        env={**environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def broken(tmp_path: Path) -> dict[str, str]:
    """An environment whose pipeline file does not parse."""
    path = tmp_path / "broken.sql"
    path.write_text(BROKEN)
    return {"TABLESTREAM_PIPELINE": str(path), "TABLESTREAM_DATA_DIR": str(tmp_path / "d")}


def test_sql_explain_prints_every_query_plan(tmp_path: Path) -> None:
    path = tmp_path / "p.sql"
    path.write_text(PIPELINE)
    done = faust("sql", "explain", str(path))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"-- gold ({path}:3): orders -> gold [stateless" in out
    assert f"-- counts ({path}:5): orders -> counts [stateful" in out
    assert "maintained IN-set" in out
    assert "Aggregate GROUP BY user_id" in out


def test_sql_explain_code_prints_the_generated_function(tmp_path: Path) -> None:
    path = tmp_path / "p.sql"
    path.write_text(PIPELINE)
    done = faust("sql", "explain", "--code", str(path))
    assert done.returncode == 0, done.stderr
    gold, counts = done.stdout.split("\n\n-- counts")
    assert "Codegen: one generated function per batch" in gold
    assert "def batch(records, partition, sink, fails):" in gold
    # The IN subquery's maintained set, probed inline (no closure called on the env).
    assert "contains" in gold
    assert "(env)" not in gold
    # As the worker decodes the declared stream: a typed struct read by attribute.
    assert "v0 = sdecode(raw)" in gold
    assert ".get('user_id')" not in gold
    assert "Codegen: closures (aggregates and windows" in counts
    assert "def batch" not in counts


def test_sql_explain_error_names_file_line_column(tmp_path: Path) -> None:
    path = tmp_path / "p.sql"
    path.write_text(PIPELINE.replace("tier = 'gold'", "tire = 'gold'"))
    done = faust("sql", "explain", str(path))
    assert done.returncode == 2
    assert f"{path}:4:" in done.stderr
    assert "unknown column 'tire'" in done.stderr
    assert "Traceback" not in done.stderr


def test_broken_pipeline_does_not_break_help_or_explain_of_another_file(
    tmp_path: Path, broken: dict[str, str]
) -> None:
    helped = faust("--help", env=broken)
    assert helped.returncode == 0, helped.stderr
    assert "tables" in helped.stdout
    assert "sql" in helped.stdout
    good = tmp_path / "good.sql"
    good.write_text(PIPELINE)
    explained = faust("sql", "explain", str(good), env=broken)
    assert explained.returncode == 0, explained.stderr
    assert "-- gold" in explained.stdout


def test_broken_pipeline_stops_the_worker_naming_file_and_line(broken: dict[str, str]) -> None:
    done = faust("worker", env={**broken, "TABLESTREAM_WEB_PORT": str(free_port())})
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith(
        f"error: {broken['TABLESTREAM_PIPELINE']}:2:1: unexpected 'SELEC' (did you mean 'SELECT'?)"
    )
    assert "Traceback" not in done.stderr + done.stdout


@pytest.mark.parametrize(
    ("command", "variable", "value", "expected"),
    [
        (["worker"], "TABLESTREAM_WEB_PORT", "http", "an integer from 1 to 65535"),
        (["worker"], "TABLESTREAM_QUERY_MAX_RECORDS", "0", "an integer >= 1"),
        (
            ["worker"],
            "TABLESTREAM_LOG_LEVEL",
            "loud",
            "one of critical, error, warning, info, debug",
        ),
        (
            ["--help"],
            "TABLESTREAM_BROKER",
            "kafka",
            "host:port[,host:port] (a kafka:// prefix is accepted)",
        ),
        (["tables"], "TABLESTREAM_SESSION_TIMEOUT", "soon", "a number >= 1"),
        (
            ["sql", "explain", "examples/orders/pipeline.sql"],
            "TABLESTREAM_WEB_PORT",
            "0",
            "an integer from 1 to 65535",
        ),
    ],
)
def test_a_bad_setting_is_one_line_and_exit_status_2(
    command: list[str], variable: str, value: str, expected: str
) -> None:
    done = faust(*command, env={variable: value})
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.splitlines() == [f"error: {variable}={value!r}: expected {expected}"]
    assert done.stdout == ""


def test_a_data_dir_that_cannot_be_made_stops_the_worker_in_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")  # a file where the data directory's parent should be
    data = blocker / "data"
    done = faust("worker", env={"TABLESTREAM_DATA_DIR": str(data)})
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.splitlines() == [
        f"error: TABLESTREAM_DATA_DIR='{data}': the data directory cannot be created "
        "(Not a directory)"
    ]


def test_an_unknown_variable_warns_with_the_closest_setting() -> None:
    done = faust("--help", env={"TABLESTREAM_WEB_PROT": "7000", "WEB_PORT": "7001"})
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert (
        "warning: TABLESTREAM_WEB_PROT is not a tablestream setting (ignored); "
        "did you mean TABLESTREAM_WEB_PORT?"
    ) in lines
    assert (
        "warning: WEB_PORT='7001' is faust's variable and is not read; "
        "tablestream reads TABLESTREAM_WEB_PORT"
    ) in lines


def test_tables_without_a_worker_lists_the_definitions_and_fails(tmp_path: Path) -> None:
    path = tmp_path / "p.sql"
    path.write_text(PIPELINE)
    port = free_port()
    env = {
        "TABLESTREAM_PIPELINE": str(path),
        "TABLESTREAM_TABLES": "limits:limits-topic",
        "TABLESTREAM_WEB_PORT": str(port),
    }
    done = faust("tables", env=env)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(f"no worker answers at http://127.0.0.1:{port} (")
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["name", "topic", "key"]
    assert [line.split()[0] for line in lines[1:]] == ["counts", "limits", "users"]
    assert lines[2].split() == ["limits", "limits-topic", "(message", "key)"]

    as_json = faust("tables", "--json", env=env)
    assert as_json.returncode == 1
    body = json.loads(as_json.stdout)
    assert body["live"] is False
    assert [t["name"] for t in body["tables"]] == ["counts", "limits", "users"]
    # faust's global flag says the same.
    assert json.loads(faust("--json", "tables", env=env).stdout) == body


def test_tables_without_a_worker_or_definitions_says_where_it_looked() -> None:
    port = free_port()
    done = faust("tables", "--web", f"http://127.0.0.1:{port}")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith(f"no worker answers at http://127.0.0.1:{port} (")
