"""Shared helpers for the SQL tests: a small reference schema, DuckDB mirroring, comparisons."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import duckdb
from hypothesis import HealthCheck, settings

from sql import Catalog, CompiledQuery, compile_query
from tables.memory import MemoryTable

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
#: Hypothesis examples of the DuckDB differential tests (a third for the time types').
DIFF_EXAMPLES = int(os.environ.get("SQL_DIFF_EXAMPLES", "400" if IN_CI else "1500"))
#: The comparison operators the generated queries use.
COMPARISONS = ["=", "<>", "<", "<=", ">", ">="]


def diff_settings(share: int = 1) -> settings:
    """Hypothesis settings of a differential test: :data:`DIFF_EXAMPLES` // ``share`` examples,
    no deadline (DuckDB's first query is slow), derandomized in CI."""
    return settings(
        max_examples=DIFF_EXAMPLES // share,
        deadline=None,
        derandomize=IN_CI,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


#: Declarations shared by our engine and DuckDB (same text, same types).
TABLE_COLUMNS = {
    "r": [("id", "BIGINT"), ("a", "BIGINT"), ("d", "DECIMAL(6,2)"), ("s", "VARCHAR")],
    "q": [("k", "BIGINT"), ("a", "BIGINT"), ("d", "DECIMAL(6,2)")],
}
TABLE_KEYS = {"r": "id", "q": "k"}
STREAM_COLUMNS = [("x", "BIGINT"), ("y", "DECIMAL(6,2)"), ("z", "VARCHAR")]


def declarations() -> str:
    out = []
    for name, cols in TABLE_COLUMNS.items():
        body = ", ".join(f"{c} {t}" for c, t in cols)
        out.append(
            f"CREATE TABLE {name} ({body}, PRIMARY KEY ({TABLE_KEYS[name]})) WITH (topic='{name}');"
        )
    body = ", ".join(f"{c} {t}" for c, t in STREAM_COLUMNS)
    out.append(f"CREATE STREAM st ({body}) WITH (topic='st');")
    return "\n".join(out) + "\n"


def make_tables(rows: Mapping[str, list[dict[str, Any]]] | None = None) -> dict[str, MemoryTable]:
    """The reference tables (:data:`TABLE_COLUMNS`), holding ``rows`` (table name → its rows)."""
    tables = {name: MemoryTable(name, key_field=TABLE_KEYS[name]) for name in TABLE_COLUMNS}
    for name, table_rows in (rows or {}).items():
        for row in table_rows:
            tables[name].put_row(row)
    return tables


def compile_ours(query: str, tables: dict[str, MemoryTable]) -> CompiledQuery:
    return compile_query(declarations() + query, Catalog.of(dict(tables)))


class DuckMirror:
    """DuckDB holding the same tables; rebuilt from our tables' snapshots after changes."""

    def __init__(self) -> None:
        self.con = duckdb.connect()
        self.con.execute("SET scalar_subquery_error_on_multiple_rows=true")

    def load(self, tables: dict[str, MemoryTable]) -> None:
        for name, cols in TABLE_COLUMNS.items():
            body = ", ".join(f"{c} {t}" for c, t in cols)
            self.con.execute(f"CREATE OR REPLACE TABLE {name} ({body})")
            rows = [tuple(v.get(c) for c, _ in cols) for v in tables[name].snapshot().values()]
            if rows:
                marks = ", ".join("?" for _ in cols)
                self.con.executemany(f"INSERT INTO {name} VALUES ({marks})", rows)

    def run(self, query: str, record: dict[str, Any]) -> list[tuple[Any, ...]]:
        body = ", ".join(f"?::{t} AS {c}" for c, t in STREAM_COLUMNS)
        self.con.execute(
            f"CREATE OR REPLACE TABLE st AS SELECT {body}",
            [record.get(c) for c, _ in STREAM_COLUMNS],
        )
        return [tuple(r) for r in self.con.execute(query).fetchall()]


def same_value(ours: Any, theirs: Any) -> bool:
    """Equal as SQL values: exact for integers, strings, booleans and DECIMAL vs DECIMAL (digits
    and scale); DOUBLE results (DuckDB's AVG, or sums of doubles) within 1e-9 relative."""
    if ours is None or theirs is None:
        return ours is None and theirs is None
    if isinstance(ours, bool) or isinstance(theirs, bool):
        return ours is theirs
    if isinstance(ours, Decimal) and isinstance(theirs, Decimal):
        return str(ours) == str(theirs)
    if isinstance(ours, (int, Decimal)) and isinstance(theirs, int):
        return ours == theirs and isinstance(ours, int)
    if isinstance(ours, (int, float, Decimal)) and isinstance(theirs, (int, float, Decimal)):
        a, b = float(ours), float(theirs)
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return bool(ours == theirs)


def same_rows(ours: list[tuple[Any, ...]], theirs: list[tuple[Any, ...]]) -> bool:
    return len(ours) == len(theirs) and all(
        len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
        for a, b in zip(ours, theirs, strict=True)
    )
