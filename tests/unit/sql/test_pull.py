"""Pull queries (``sql.pull``): one SELECT over a table's current rows, key lookups when the
predicate pins the key, row and time limits, errors with line and column."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from sql import BindError, ParseError, UnsupportedError
from sql.pull import PullTimeoutError, compile_pull_query
from tables.memory import MemoryTable


class CountingTable(MemoryTable):
    """Counts full scans: a key lookup must not iterate the table."""

    scans = 0

    def items(self) -> Iterator[tuple[Any, Any]]:
        type(self).scans += 1
        return super().items()


@pytest.fixture
def tables() -> dict[str, MemoryTable]:
    users = CountingTable("users", key_field="id")
    for i in range(1, 101):
        users.put(str(i), {"id": i, "name": f"u{i}", "tier": "gold" if i % 10 == 0 else "basic"})
    tiers = MemoryTable("tiers", key_field="tier")
    tiers.put("gold", {"tier": "gold", "discount": Decimal("0.10")})
    CountingTable.scans = 0
    return {"users": users, "tiers": tiers}


def test_a_predicate_on_a_non_key_column_scans_and_filters(tables: dict[str, MemoryTable]) -> None:
    q = compile_pull_query("SELECT id, name FROM users WHERE tier = 'gold' AND id > 50", tables)
    result = q.execute()
    assert result.strategy == "full scan"
    assert sorted(r["id"] for r in result.rows) == [60, 70, 80, 90, 100]
    assert result.columns == ["id", "name"]
    assert result.scanned == 100
    assert result.stopped is None


def test_a_pinned_key_is_looked_up_not_scanned(tables: dict[str, MemoryTable]) -> None:
    q = compile_pull_query("SELECT * FROM users WHERE id = 42", tables)
    CountingTable.scans = 0  # compiling samples rows to infer the columns
    result = q.execute()
    assert result.strategy == "key lookup"
    assert result.rows == [{"id": 42, "name": "u42", "tier": "basic"}]
    assert result.scanned == 1
    assert CountingTable.scans == 0
    assert "key lookup" in q.explain()

    sql = "SELECT name FROM users u WHERE u._key IN ('3', '5', '3', 'nope')"
    q = compile_pull_query(sql, tables)
    assert q.execute().rows == [{"name": "u3"}, {"name": "u5"}]
    # The rest of the predicate still applies to the looked-up rows.
    q = compile_pull_query("SELECT name FROM users WHERE id = 42 AND tier = 'gold'", tables)
    CountingTable.scans = 0
    assert q.execute().rows == []
    assert CountingTable.scans == 0


def test_limit_stops_the_scan_and_the_row_cap_says_so(tables: dict[str, MemoryTable]) -> None:
    result = compile_pull_query("SELECT id FROM users LIMIT 3", tables).execute()
    assert len(result.rows) == 3
    assert result.stopped is None  # the query asked for 3: a complete answer
    assert result.scanned == 3
    result = compile_pull_query("SELECT id FROM users", tables).execute(max_rows=7)
    assert len(result.rows) == 7
    assert result.stopped == "row limit"


def test_time_limit_cuts_a_scan_and_refuses_a_partial_aggregate(
    tables: dict[str, MemoryTable],
) -> None:
    ticks = iter(range(1_000_000))

    def clock() -> float:
        return float(next(ticks))  # every reading one second later

    users = tables["users"]
    for i in range(101, 2001):
        users.put(str(i), {"id": i, "name": f"u{i}", "tier": "basic"})
    result = compile_pull_query("SELECT id FROM users", tables).execute(
        max_rows=10_000, time_limit=0.5, clock=clock
    )
    assert result.stopped == "time limit"
    assert 0 < len(result.rows) < 2000
    with pytest.raises(PullTimeoutError, match="time limit"):
        compile_pull_query("SELECT COUNT(*) AS n FROM users", tables).execute(
            time_limit=0.5, clock=clock
        )


def test_aggregates_answer_once_per_group(tables: dict[str, MemoryTable]) -> None:
    q = compile_pull_query("SELECT tier, COUNT(*) AS n FROM users GROUP BY tier", tables)
    rows = sorted(q.execute().rows, key=lambda r: r["tier"])
    assert rows == [{"tier": "basic", "n": 90}, {"tier": "gold", "n": 10}]


def test_other_tables_join_and_subquery_as_in_a_continuous_query(
    tables: dict[str, MemoryTable],
) -> None:
    q = compile_pull_query(
        "SELECT u.id, t.discount FROM users u JOIN tiers t ON t.tier = u.tier WHERE u.id <= 20",
        tables,
    )
    assert sorted(q.execute().rows, key=lambda r: r["id"]) == [
        {"id": 10, "discount": Decimal("0.10")},
        {"id": 20, "discount": Decimal("0.10")},
    ]
    q = compile_pull_query(
        "SELECT id FROM users WHERE tier IN (SELECT tier FROM tiers) AND id < 15", tables
    )
    assert q.execute().rows == [{"id": 10}]


@pytest.mark.parametrize(
    ("sql", "error", "line", "column", "text"),
    [
        ("SELECT id FROM users\nWHERE id = = 3", ParseError, 2, 12, ""),
        ("SELECT id FROM userz", BindError, 1, 16, "did you mean 'users'"),
        ("SELECT nope FROM users", BindError, 1, 8, "unknown column 'nope'"),
        ("CREATE TABLE t AS SELECT id FROM users", UnsupportedError, 1, 1, "CREATE"),
        ("SELECT id FROM users ORDER BY id", UnsupportedError, 1, 31, "key order"),
    ],
)
def test_bad_queries_fail_with_line_and_column(
    tables: dict[str, MemoryTable],
    sql: str,
    error: type[Exception],
    line: int,
    column: int,
    text: str,
) -> None:
    with pytest.raises(error) as info:
        compile_pull_query(sql, tables)
    assert (info.value.line, info.value.column) == (line, column)  # type: ignore[attr-defined]
    assert text in str(info.value)


def test_a_schema_cache_spares_the_column_sample(tables: dict[str, MemoryTable]) -> None:
    cache: dict[str, Any] = {}
    compile_pull_query("SELECT name FROM users WHERE id = 1", tables, cache)
    assert set(cache) == {"users", "tiers"}
    CountingTable.scans = 0
    q = compile_pull_query("SELECT name FROM users WHERE id = 2", tables, cache)
    assert q.execute().rows == [{"name": "u2"}]
    assert CountingTable.scans == 0  # neither compiled nor executed by a scan
