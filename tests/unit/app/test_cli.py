"""`faust -A app sql explain FILE` and `faust -A app tables`, run as users run them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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


def test_sql_explain_error_names_file_line_column(tmp_path: Path) -> None:
    path = tmp_path / "p.sql"
    path.write_text(PIPELINE.replace("tier = 'gold'", "tire = 'gold'"))
    done = faust("sql", "explain", str(path))
    assert done.returncode == 2
    assert f"{path}:4:" in done.stderr
    assert "unknown column 'tire'" in done.stderr


def test_tables_lists_definitions_when_no_worker_answers(tmp_path: Path) -> None:
    path = tmp_path / "p.sql"
    path.write_text(PIPELINE)
    env = {
        "TABLESTREAM_PIPELINE": str(path),
        "TABLESTREAM_TABLES": "limits:limits-topic",
        "TABLESTREAM_WEB_PORT": str(free_port()),
        "TABLESTREAM_DATA_DIR": str(tmp_path / "data"),
    }
    done = faust("tables", env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("no worker answers at")
    names = [line.split()[0] for line in lines[2:]]
    assert names == ["counts", "limits", "users"]
    assert "(message key)" in lines[3]
