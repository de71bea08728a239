"""``CREATE CATALOG pg WITH (connector='postgres', dsn=...)`` and ``JOIN pg.public.customers``:
the table's columns and key are read from PostgreSQL when the pipeline loads; the query runs as
with a declared table; a table that is not there is one clear error naming catalog and table."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.pipeline import catalog_for, load_pipeline
from core.errors import ConfigError
from sql import compile_query
from tables.protocol import Table
from tests.support.federation import CUSTOMERS, catalog_customers, pg_table, unique_table
from tests.support.postgres import PostgresCluster

PIPELINE = """
CREATE CATALOG pg WITH (connector='postgres', dsn='{dsn}', cache='partial', cache_ttl='30s');
CREATE STREAM orders (order_id BIGINT, customer_id BIGINT) WITH (topic='orders');
CREATE STREAM out WITH (topic='out') AS
SELECT o.order_id, c.tier, c.credit,
       (SELECT k.country FROM pg.public.{table} k WHERE k.id = o.customer_id + 1) AS next_country
FROM orders o LEFT JOIN pg.public.{table} c ON c.id = o.customer_id
EMIT CHANGES;
"""


async def test_catalog_tables(postgres: PostgresCluster, tmp_path: Path) -> None:
    name = unique_table()
    pg_table(postgres, name, CUSTOMERS)
    path = tmp_path / "p.sql"
    path.write_text(PIPELINE.format(dsn=postgres.dsn(password="s3cret"), table=name))
    qualified = f"pg.public.{name}"
    pipeline, table = catalog_customers(path, qualified, "postgres")
    assert pipeline.queries[0].reads == (qualified,)
    try:
        tables: dict[str, Table] = {qualified: table}
        q = compile_query(pipeline.queries[0].sql, catalog_for(tables, pipeline))
        assert f"LeftLookupJoin pg.public.{name}" in q.explain() or name in q.explain()
        assert "s3cret" not in q.explain()
        prefetcher = q.prefetcher
        assert prefetcher is not None
        recs = [{"order_id": 1, "customer_id": 1}, {"order_id": 2, "customer_id": 4}]
        await prefetcher.fetch([(r, None, 0) for r in recs])
        rows = [q.process(r) for r in recs]
        assert [r[0]["tier"] for r in rows] == ["gold", "gold"]
        assert [r[0]["next_country"] for r in rows] == ["DE", "US"]
        assert str(rows[0][0]["credit"]) == "100.50"
        assert table.stats().as_dict()["round_trips"] == 1
    finally:
        table.close_sync()


def test_a_missing_catalog_table(postgres: PostgresCluster, tmp_path: Path) -> None:
    path = tmp_path / "p.sql"
    path.write_text(PIPELINE.format(dsn=postgres.dsn(password="s3cret"), table="nope"))
    with pytest.raises(ConfigError) as err:
        load_pipeline([path])
    assert "catalog 'pg': table 'public.nope': no such table" in str(err.value)
    assert "s3cret" not in str(err.value)
