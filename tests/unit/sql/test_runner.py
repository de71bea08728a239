"""The offline runner's public contract (docs/SQL.md), as a real subprocess and in-process.

``python -m sql run QUERY.sql --table NAME=FILE.jsonl[:KEYFIELD] ... --stream NAME=FILE.jsonl
[--events FILE.jsonl] [--explain]``: JSON Lines in, one JSON object per emitted row out, exit 0 /
1 (some record failed) / 2 (query or input invalid), SQL errors with line and column on stderr.
Expected rows come from DuckDB running the same query over the same data where a value is
computed; literal text is asserted where the contract is about the text (``22.50``).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from core.codec import loads_exact
from tests.support.sql_runner import run_cli, run_inproc, write

DECLS = """CREATE TABLE users (id BIGINT, name STRING, tier STRING, credit DECIMAL(10,2),
  PRIMARY KEY (id)) WITH (topic='users');
CREATE STREAM orders (user_id BIGINT, amount DECIMAL(10,2)) WITH (topic='orders');
"""
USERS = [
    {"id": 1, "name": "ann", "tier": "gold", "credit": "30.00"},
    {"id": 2, "name": "bob", "tier": "silver", "credit": "5.5"},
    {"id": 3, "name": "cy", "tier": None, "credit": None},
]
ORDERS = [
    {"user_id": 1, "amount": "7.50", "_timestamp": 1700000000000, "_key": "o-1"},
    {"user_id": 2, "amount": "7.50"},
    {"user_id": 3, "amount": "0.10"},
    {"user_id": 9, "amount": "1.25"},
]
QUERY = (
    "SELECT o.user_id, o.amount * 3 AS triple,\n"
    "  (SELECT u.name FROM users u WHERE u.id = o.user_id) AS name,\n"
    "  o.amount <= (SELECT u.credit FROM users u WHERE u.id = o.user_id) AS covered\n"
    "FROM orders o\n"
    "WHERE o.user_id NOT IN (SELECT id FROM users WHERE tier = 'silver')"
)


def _raw_jsonl(rows: list[dict[str, Any]]) -> str:
    """JSON Lines with decimal strings written as JSON numbers, digits kept (7.50, not 7.5)."""
    lines = []
    for r in rows:
        text = json.dumps(r)
        for k, v in r.items():
            if isinstance(v, str) and v.replace(".", "", 1).isdigit() and k != "_key":
                text = text.replace(f'"{k}": "{v}"', f'"{k}": {v}')
        lines.append(text)
    return "\n".join(lines) + "\n"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    return {
        "query": write(tmp_path, "q.sql", DECLS + QUERY + ";\n"),
        "users": write(tmp_path, "users.jsonl", _raw_jsonl(USERS)),
        "orders": write(tmp_path, "orders.jsonl", _raw_jsonl(ORDERS)),
    }


def duckdb_rows() -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    con.execute("CREATE TABLE users (id BIGINT, name VARCHAR, tier VARCHAR, credit DECIMAL(10,2))")
    con.executemany(
        "INSERT INTO users VALUES (?, ?, ?, ?::DECIMAL(10,2))",
        [(u["id"], u["name"], u["tier"], u["credit"]) for u in USERS],
    )
    out: list[tuple[Any, ...]] = []
    for o in ORDERS:
        con.execute(
            "CREATE OR REPLACE TABLE orders AS"
            " SELECT ?::BIGINT AS user_id, ?::DECIMAL(10,2) AS amount",
            [o["user_id"], o["amount"]],
        )
        out.extend(tuple(r) for r in con.execute(QUERY).fetchall())
    return out


def parse_rows(stdout: str) -> list[dict[str, Any]]:
    return [loads_exact(line) for line in stdout.splitlines()]


def test_subprocess_run_matches_duckdb_with_exact_decimals(files: dict[str, str]) -> None:
    proc = run_cli(
        [
            files["query"],
            "--table",
            f"users={files['users']}:id",
            "--stream",
            f"orders={files['orders']}",
        ]
    )
    assert proc.returncode == 0, proc.stderr
    rows = parse_rows(proc.stdout)
    assert [tuple(r.values()) for r in rows] == duckdb_rows()
    assert all(list(r) == ["user_id", "triple", "name", "covered"] for r in rows)
    # DECIMAL(10,2) * 3 keeps scale 2 on output: the digits 22.50 as a JSON number.
    assert '"triple":22.50' in proc.stdout.splitlines()[0]
    assert rows[0]["triple"] == Decimal("22.50")
    assert str(rows[0]["triple"]) == "22.50"


def test_in_process_main_prints_what_the_subprocess_prints(files: dict[str, str]) -> None:
    args = [
        files["query"],
        "--table",
        f"users={files['users']}:id",
        "--stream",
        f"orders={files['orders']}",
    ]
    code, out, err = run_inproc(args)
    proc = run_cli(args)
    assert (code, out) == (proc.returncode, proc.stdout)
    assert err == proc.stderr == ""


def test_key_field_from_declaration_and_from_the_spec(
    tmp_path: Path, files: dict[str, str]
) -> None:
    # The declaration's PRIMARY KEY keys the table when the spec gives no KEYFIELD; a key lookup
    # needs that key (EXPLAIN shows it), and both spellings answer the same.
    plain = run_inproc(
        [
            files["query"],
            "--table",
            f"users={files['users']}",
            "--stream",
            f"orders={files['orders']}",
        ]
    )
    keyed = run_inproc(
        [
            files["query"],
            "--table",
            f"users={files['users']}:id",
            "--stream",
            f"orders={files['orders']}",
        ]
    )
    assert plain == keyed
    assert plain[0] == 0


def test_events_table_change_between_two_records_changes_the_second(tmp_path: Path) -> None:
    query = write(
        tmp_path,
        "q.sql",
        "SELECT o.user_id, (SELECT u.tier FROM users u WHERE u.id = o.user_id) AS tier,\n"
        "  o.user_id IN (SELECT id FROM users WHERE tier = 'gold') AS gold\nFROM orders o",
    )
    users = write(tmp_path, "users.jsonl", '{"id": 1, "tier": "silver"}\n')
    events = write(
        tmp_path,
        "events.jsonl",
        "\n".join(
            [
                '{"stream": "orders", "value": {"user_id": 1}}',
                '{"table": "users", "key": 1, "value": {"id": 1, "tier": "gold"}}',
                '{"stream": "orders", "value": {"user_id": 1}}',
                '{"table": "users", "key": 1, "value": null}',
                '{"stream": "orders", "value": {"user_id": 1}}',
                '{"stream": "other", "value": {"user_id": 1}}',
            ]
        )
        + "\n",
    )
    code, out, err = run_inproc(
        [query, "--table", f"users={users}:id", "--stream", "orders", "--events", events]
    )
    assert code == 0, err
    assert parse_rows(out) == [
        {"user_id": 1, "tier": "silver", "gold": False},
        {"user_id": 1, "tier": "gold", "gold": True},  # the change between the records
        {"user_id": 1, "tier": None, "gold": False},  # the tombstone deleted the row
    ]


def test_stream_file_then_events_in_order(tmp_path: Path) -> None:
    query = write(tmp_path, "q.sql", "SELECT n, EXISTS (SELECT 1 FROM flags WHERE on_) AS f FROM s")
    flags = write(tmp_path, "flags.jsonl", '{"k": "a", "on_": false}\n')
    stream = write(tmp_path, "s.jsonl", '{"n": 1}\n{"n": 2}\n')
    events = write(
        tmp_path,
        "e.jsonl",
        '{"table": "flags", "key": "a", "value": {"k": "a", "on_": true}}\n'
        '{"stream": "s", "value": {"n": 3}}\n',
    )
    code, out, _ = run_inproc(
        [query, "--table", f"flags={flags}:k", "--stream", f"s={stream}", "--events", events]
    )
    assert code == 0
    assert parse_rows(out) == [{"n": 1, "f": False}, {"n": 2, "f": False}, {"n": 3, "f": True}]


def test_reserved_keys_are_metadata_not_columns(tmp_path: Path) -> None:
    stream = write(
        tmp_path, "s.jsonl", '{"a": 1, "_key": "k1", "_timestamp": 1700000000123}\n{"a": 2}\n'
    )
    star = write(tmp_path, "star.sql", "SELECT * FROM s")
    meta = write(
        tmp_path,
        "meta.sql",
        "SELECT a, _key, _timestamp, UNIX_MILLIS(_timestamp) AS ms, _offset, _partition FROM s",
    )
    code, out, _ = run_inproc([star, "--stream", f"s={stream}"])
    assert code == 0
    assert parse_rows(out) == [{"a": 1}, {"a": 2}]
    code, out, _ = run_inproc([meta, "--stream", f"s={stream}"])
    assert code == 0
    assert parse_rows(out) == [
        # _timestamp is a TIMESTAMP(3) (ISO text on output); UNIX_MILLIS gives the epoch ms back
        {
            "a": 1,
            "_key": "k1",
            "_timestamp": "2023-11-14T22:13:20.123000",
            "ms": 1700000000123,
            "_offset": 0,
            "_partition": -1,
        },
        {"a": 2, "_key": None, "_timestamp": None, "ms": None, "_offset": 1, "_partition": -1},
    ]


def test_undeclared_json_numbers_are_exact(tmp_path: Path) -> None:
    query = write(tmp_path, "q.sql", "SELECT a + b AS s, a + b = 0.3 AS exact FROM s")
    stream = write(tmp_path, "s.jsonl", '{"a": 0.1, "b": 0.2}\n{"a": 1.10, "b": 2.205}\n')
    code, out, _ = run_inproc([query, "--stream", f"s={stream}"])
    assert code == 0
    assert out.splitlines() == ['{"s":0.3,"exact":true}', '{"s":3.305,"exact":false}']


def test_emit_final_rows_come_at_end_of_input(tmp_path: Path) -> None:
    query = write(
        tmp_path,
        "q.sql",
        DECLS + "CREATE TABLE totals WITH (topic='totals') AS\n"
        "SELECT user_id, SUM(amount) AS total, COUNT(*) AS n FROM orders\n"
        "GROUP BY user_id EMIT FINAL;",
    )
    stream = write(tmp_path, "o.jsonl", _raw_jsonl(ORDERS + ORDERS[:1]))
    code, out, _ = run_inproc([query, "--stream", f"orders={stream}"])
    assert code == 0
    rows = {r["user_id"]: r for r in parse_rows(out)}
    assert len(rows) == 4
    assert rows[1]["total"] == Decimal("15.00")
    assert rows[1]["n"] == 2
    assert '"total":15.00' in out


def test_explain_prints_the_plan_instead_of_running(files: dict[str, str]) -> None:
    proc = run_cli(
        [
            files["query"],
            "--table",
            f"users={files['users']}:id",
            "--stream",
            f"orders={files['orders']}",
            "--explain",
        ]
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("Project user_id, triple, name, covered")
    assert any(line.strip().startswith("StreamScan orders AS o") for line in lines)
    assert sum("key lookup" in line for line in lines) == 2
    assert any("NOT IN" not in line and "maintained IN-set" in line for line in lines)
    assert not any(line.startswith("{") for line in lines)  # no rows


def test_sql_error_exits_2_with_line_and_column(tmp_path: Path, files: dict[str, str]) -> None:
    bad = write(tmp_path, "bad.sql", DECLS + "SELECT o.user_id,\n  o.amout\nFROM orders o")
    proc = run_cli(
        [bad, "--table", f"users={files['users']}:id", "--stream", f"orders={files['orders']}"]
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    # The query starts on line 4 (after three declaration lines); `o.amout` is on line 5.
    assert "line 5, column 3: unknown column 'o.amout'" in proc.stderr
    assert "did you mean 'amount'?" in proc.stderr
    assert "    o.amout\n    ^" in proc.stderr


def test_parse_error_exits_2_with_position(tmp_path: Path, files: dict[str, str]) -> None:
    bad = write(tmp_path, "bad.sql", "SELECT a,, b FROM s")
    code, out, err = run_inproc([bad, "--stream", f"s={files['orders']}"])
    assert code == 2
    assert out == ""
    assert err.startswith("error: line 1, column ")


def test_record_error_exits_1_and_processing_continues(tmp_path: Path) -> None:
    query = write(tmp_path, "q.sql", "SELECT 10 / d AS r FROM s")
    stream = write(tmp_path, "s.jsonl", '{"d": 2}\n{"d": 0}\n{"d": 5}\n')
    code, out, err = run_inproc([query, "--stream", f"s={stream}"])
    assert code == 1
    assert parse_rows(out) == [{"r": 5.0}, {"r": 2.0}]
    assert "record 2: division by zero" in err


def test_bad_jsonl_line_names_file_and_line(tmp_path: Path, files: dict[str, str]) -> None:
    stream = write(tmp_path, "s.jsonl", '{"user_id": 1}\n{"user_id": 2,,}\n')
    code, out, err = run_inproc(
        [files["query"], "--table", f"users={files['users']}:id", "--stream", f"orders={stream}"]
    )
    assert code == 2
    assert out == ""
    assert f"{stream}:2:" in err
    table = write(tmp_path, "t.jsonl", '{"id": 1}\n\n[1, 2]\n')
    code, _, err = run_inproc(
        [files["query"], "--table", f"users={table}:id", "--stream", f"orders={files['orders']}"]
    )
    assert code == 2
    assert f"{table}:3: expected a JSON object" in err


def test_non_object_stream_line_is_an_input_error(tmp_path: Path) -> None:
    query = write(tmp_path, "q.sql", "SELECT a FROM s")
    stream = write(tmp_path, "s.jsonl", '{"a": 1}\n42\n')
    code, out, err = run_inproc([query, "--stream", f"s={stream}"])
    assert code == 2
    assert out == ""
    assert f"{stream}:2: expected a JSON object" in err


def test_bad_events_name_file_and_line(tmp_path: Path) -> None:
    query = write(tmp_path, "q.sql", "SELECT a FROM s")
    for body, reason in [
        (
            '{"stream": "s", "value": {"a": 1}}\n{"nothing": 1}\n',
            'an event needs "table" or "stream"',
        ),
        (
            '{"stream": "s", "value": {"a": 1}}\n{"table": "nope", "key": 1, "value": null}\n',
            "unknown table 'nope'",
        ),
        ('{"stream": "s", "value": [1]}\n', "expected a JSON object"),
    ]:
        events = write(tmp_path, "e.jsonl", body)
        code, _, err = run_inproc([query, "--stream", "s", "--events", events])
        assert code == 2, body
        line = body.count("\n")
        assert f"{events}:{line}:" in err, err
        assert reason in err, err


def test_bad_table_spec_and_missing_file(tmp_path: Path) -> None:
    query = write(tmp_path, "q.sql", "SELECT a FROM s")
    code, _, err = run_inproc([query, "--table", "=x.jsonl", "--stream", "s"])
    assert code == 2
    assert "expected NAME=FILE.jsonl[:KEYFIELD]" in err
    code, _, err = run_inproc(
        [query, "--table", f"t={tmp_path / 'missing.jsonl'}", "--stream", "s"]
    )
    assert code == 2
    assert "missing.jsonl" in err
