"""Errors at start, against a real PostgreSQL and DuckDB file: unreachable DSN, no such table, no
such column, a declared type that does not fit. One ConfigError naming the table and the
option (or column); no password in it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from core.errors import ConfigError
from tests.support.federation import (
    CUSTOMERS,
    declaration,
    duck_file,
    external,
    pg_table,
    unique_table,
)
from tests.support.postgres import PostgresCluster


def start_error(decl: str) -> ConfigError:
    table = external(decl, "c", open_now=False)
    with pytest.raises(ConfigError) as err:
        table.open_sync()
    table.close_sync()
    return err.value


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_dsn() -> None:
    dsn = f"postgresql://app:s3cret@127.0.0.1:{closed_port()}/crm"
    err = start_error(
        declaration("c", f"connector='postgres', dsn='{dsn}', table='t', timeout='1s'")
    )
    text = str(err)
    assert text.startswith("table 'c': cannot connect to postgres (dsn=postgresql://app:***@")
    assert "s3cret" not in text
    assert err.fields["option"] == "dsn"


def test_no_such_table_column_or_type(postgres: PostgresCluster, tmp_path: Path) -> None:
    name = unique_table()
    pg_table(postgres, name, CUSTOMERS)
    dsn = postgres.dsn(password="s3cret")
    err = start_error(declaration("c", f"connector='postgres', dsn='{dsn}', table='nope'"))
    assert (
        str(err)
        == f"table 'c': option table='nope': no such table in 127.0.0.1:{postgres.port}/postgres"
    )
    pg = f"connector='postgres', dsn='{dsn}', table='{name}'"
    wrong = f"CREATE TABLE c (id BIGINT, tiers VARCHAR, PRIMARY KEY (id)) WITH ({pg});\n"
    err = start_error(wrong)
    assert "table 'c': column 'tiers' is not in" in str(err)
    typed = f"CREATE TABLE c (id BIGINT, credit DOUBLE, PRIMARY KEY (id)) WITH ({pg});\n"
    err = start_error(typed)
    assert (
        str(err)
        == f"table 'c': column 'credit' is declared DOUBLE but is numeric(12,2) in '{name}'"
    )
    duck = tmp_path / "x.duckdb"
    duck_file(duck, "customers", CUSTOMERS)
    dk = f"connector='duckdb', path='{duck}', table='customers'"
    scale = f"CREATE TABLE c (id BIGINT, credit DECIMAL(12,4), PRIMARY KEY (id)) WITH ({dk});\n"
    assert "declared DECIMAL(12,4) but is DECIMAL(12,2)" in str(start_error(scale))
    missing = declaration("c", f"connector='duckdb', path='{tmp_path / 'none.duckdb'}', table='t'")
    assert "cannot connect to duckdb (path=" in str(start_error(missing))
