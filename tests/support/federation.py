"""The same customer rows in a PostgreSQL table, a DuckDB file and an in-memory (Kafka-kind)
table, and external tables built the way the worker builds them (spec → kind → table)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from sources.lookup import LookupTable
from sources.snapshot import SnapshotTable
from sources.table import ExternalTable
from sql.parse import parse_script
from tables.kinds import TableEnv, table_kind
from tables.memory import MemoryTable
from tables.protocol import ConnectedTable, Table
from tables.spec import TableSpec
from tests.support.postgres import PostgresCluster

COLUMNS = "id BIGINT, tier VARCHAR, credit DECIMAL(12,2), country VARCHAR, PRIMARY KEY (id)"
PG_DDL = "id bigint primary key, tier text, credit numeric(12,2), country text"
DUCK_DDL = "id BIGINT PRIMARY KEY, tier VARCHAR, credit DECIMAL(12,2), country VARCHAR"
#: id -> (tier, credit, country); NULLs in every column but the key.
CUSTOMERS: dict[int, tuple[str | None, Decimal | None, str | None]] = {
    1: ("gold", Decimal("100.50"), "FR"),
    2: ("basic", Decimal("0.00"), "DE"),
    3: (None, Decimal("12.34"), "FR"),
    4: ("gold", None, None),
    5: ("blocked", Decimal("-5.25"), "US"),
    6: ("basic", Decimal("99999.99"), "DE"),
}


def unique_table(prefix: str = "customers") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def rows_of(data: Mapping[int, tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [(k, *v) for k, v in sorted(data.items())]


def pg_table(pg: PostgresCluster, name: str, data: Mapping[int, tuple[Any, ...]]) -> None:
    pg.execute(f"CREATE TABLE {name} ({PG_DDL})")
    if data:
        pg.executemany(f"INSERT INTO {name} VALUES (%s, %s, %s, %s)", rows_of(data))


def duck_file(path: Path, name: str, data: Mapping[int, tuple[Any, ...]]) -> None:
    import duckdb

    con = duckdb.connect(str(path))
    try:
        con.execute(f"CREATE TABLE {name} ({DUCK_DDL})")
        if data:
            con.executemany(f"INSERT INTO {name} VALUES (?, ?, ?, ?)", rows_of(data))
    finally:
        con.close()


def memory_table(name: str, data: Mapping[int, tuple[Any, ...]]) -> MemoryTable:
    t = MemoryTable(name, "id")
    for k, (tier, credit, country) in data.items():
        t.put(k, {"id": k, "tier": tier, "credit": credit, "country": country})
    return t


def declaration(name: str, options: str) -> str:
    return f"CREATE TABLE {name} ({COLUMNS}) WITH ({options});\n"


def connected(
    sql_declaration: str,
    name: str,
    *,
    open_now: bool = True,
    secrets: Mapping[str, str] | None = None,
) -> ConnectedTable:
    """The table ``name`` of a ``CREATE TABLE`` text, built by its kind (and opened), given
    ``secrets`` as the worker gives its environment."""
    decl = parse_script(sql_declaration + "SELECT 1 FROM s").declarations[name.lower()]
    topic = decl.options.get("topic", decl.name)
    spec = TableSpec.from_options(decl.name, topic, decl.primary_key, decl.options, decl.columns)
    table = table_kind(spec.name, spec.kind).create(spec, TableEnv(secrets=secrets or {}))
    assert isinstance(table, ConnectedTable)
    if open_now:
        table.open_sync()
    return table


def external(
    sql_declaration: str,
    name: str,
    *,
    open_now: bool = True,
    secrets: Mapping[str, str] | None = None,
) -> ExternalTable:
    """The external (SQL database) table ``name`` of a ``CREATE TABLE`` text (opened)."""
    table = connected(sql_declaration, name, open_now=open_now, secrets=secrets)
    assert isinstance(table, ExternalTable)
    return table


def lookup_table(sql_declaration: str, name: str) -> LookupTable:
    table = external(sql_declaration, name)
    assert isinstance(table, LookupTable)
    return table


def snapshot_table(sql_declaration: str, name: str, *, open_now: bool = True) -> SnapshotTable:
    table = external(sql_declaration, name, open_now=open_now)
    assert isinstance(table, SnapshotTable)
    return table


def column(table: Table, key: Any, name: str) -> Any:
    """``table.get(key)[name]`` (the test fails if the key has no row)."""
    row = table.get(key)
    assert isinstance(row, dict), (key, row)
    return row[name]
