"""Table names as SQL identifiers (``sources.table.quote_table``, the PostgreSQL, DuckDB and
ClickHouse kinds' ``quote``): each dotted part quoted, its quotes doubled; checked on DuckDB."""

from __future__ import annotations

import duckdb
import pytest

from sources.duckdb import DuckDB
from sources.postgres import Postgres
from sources.table import quote_table


@pytest.mark.parametrize(
    ("name", "quoted"),
    [
        ("t", '"t"'),
        ("crm.customers", '"crm"."customers"'),
        ('main.t"q', '"main"."t""q"'),
        ("Mixed Case", '"Mixed Case"'),
    ],
)
def test_each_part_is_quoted(name: str, quoted: str) -> None:
    assert quote_table(name) == quoted
    assert DuckDB.quote(name) == Postgres.quote(name) == quoted


def test_a_quoted_name_reads_its_table() -> None:
    con = duckdb.connect()
    try:
        con.execute('CREATE TABLE "t""q" (id INTEGER)')
        con.execute('INSERT INTO "t""q" VALUES (7)')
        sql = "SELECT id FROM " + quote_table('main.t"q')
        assert con.execute(sql).fetchall() == [(7,)]
    finally:
        con.close()
