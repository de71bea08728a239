"""DuckDB tables: ``CREATE TABLE t (...) WITH (connector='duckdb', path='data/ml.duckdb',
table='scores', ...)``. A read-only connection to the file, a cursor per calling thread (DuckDB
connections are not shared across threads; cursors are)."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sources import config as cfg
from sources.modes import create
from sources.table import ExternalTable, quote_table
from tables.kinds import TableEnv
from tables.protocol import Table
from tables.spec import TableSpec

_COLUMNS = """
SELECT column_name, data_type FROM information_schema.columns
WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position
"""


class DuckDB:
    any_clause = "{column} = ANY(?)"

    def __init__(self, config: cfg.SourceConfig) -> None:
        self.config = config
        self.label = f"path={config.target}"
        self._con: Any = None
        self._local = threading.local()

    def open(self) -> None:
        import duckdb

        path = Path(self.config.target)
        if not path.exists():
            raise FileNotFoundError(f"no DuckDB file {path}")
        self._con = duckdb.connect(str(path), read_only=True)
        self._con.execute("SET TimeZone = 'UTC'")

    def close(self) -> None:
        con, self._con = self._con, None
        if con is not None:
            con.close()

    def _cursor(self) -> Any:
        if self._con is None:
            raise RuntimeError("not connected")
        cur = getattr(self._local, "cursor", None)
        if cur is None or getattr(self._local, "con", None) is not self._con:
            cur = self._local.cursor = self._con.cursor()
            self._local.con = self._con
        return cur

    def columns(self, table: str) -> dict[str, str] | None:
        schema, _, name = table.rpartition(".")
        rows = self.query(_COLUMNS, [schema or "main", name])
        return {str(c): str(t) for c, t in rows} or None

    def primary_key(self, table: str) -> list[str]:
        schema, _, name = table.rpartition(".")
        rows = self.query(
            "SELECT constraint_column_names FROM duckdb_constraints()"
            " WHERE constraint_type = 'PRIMARY KEY' AND schema_name = ? AND table_name = ?",
            [schema or "main", name],
        )
        return [str(c) for c in rows[0][0]] if rows else []

    def query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return list(self._cursor().execute(sql, list(params)).fetchall())

    @staticmethod
    def quote(table: str) -> str:
        return quote_table(table)


class DuckDBKind:
    name = "duckdb"
    target = "path"
    extra: tuple[str, ...] = ()

    def database(self, config: cfg.SourceConfig) -> DuckDB:
        return DuckDB(config)

    def check(self, spec: TableSpec) -> None:
        cfg.parse(spec, "path")

    def catalog_table(self, name: str, catalog: str, options: Mapping[str, str]) -> TableSpec:
        from sources.catalog import catalog_table

        return catalog_table(name, catalog, options)

    def create(self, spec: TableSpec, env: TableEnv) -> Table:
        config = cfg.parse(spec, "path")
        table: ExternalTable = create(config, DuckDB(config))
        return table


KIND = DuckDBKind()
