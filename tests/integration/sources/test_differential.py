"""The differential test: the same rows in an in-memory (Kafka-kind) table, a PostgreSQL table,
a DuckDB file, ClickHouse (embedded by chdb, and a server over HTTP) and an Apache Iceberg table
(pyiceberg's SQL catalog, a local warehouse); the same queries give byte-identical outputs on all
of them (each SQL database's table with a partial cache, a per-batch cache and a full cache; the
Iceberg table from its snapshot)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from core.codec import dumps
from sql import compile_query
from tables.protocol import Table
from tests.support.clickhouse import READER_PASSWORD, ClickHouseServer, chdb_table, server_table
from tests.support.federation import (
    CUSTOMERS,
    connected,
    declaration,
    duck_file,
    external,
    memory_table,
    pg_table,
    unique_table,
)
from tests.support.postgres import PostgresCluster

STREAM = (
    "CREATE STREAM orders (order_id BIGINT, customer_id BIGINT, amount DECIMAL(10,2),"
    " country VARCHAR) WITH (topic='orders');\n"
)
QUERIES = {
    "join": "SELECT o.order_id, c.tier, c.credit, o.amount + c.credit AS total"
    " FROM orders o JOIN customers c ON c.id = o.customer_id",
    "left join with misses": "SELECT o.order_id, c.tier, c.country, c.credit"
    " FROM orders o LEFT JOIN customers c ON c.id = o.customer_id",
    "IN by key": "SELECT o.order_id FROM orders o WHERE o.customer_id IN"
    " (SELECT id FROM customers c WHERE c.id = o.customer_id AND c.tier = 'gold')",
    "NOT EXISTS": "SELECT o.order_id, o.amount FROM orders o WHERE NOT EXISTS"
    " (SELECT 1 FROM customers b WHERE b.id = o.customer_id AND b.tier = 'blocked')",
    "scalar subquery": "SELECT o.order_id,"
    " (SELECT credit FROM customers c WHERE c.id = o.customer_id) AS credit FROM orders o",
    "non-key probe": "SELECT o.order_id, (SELECT COUNT(*) FROM customers c"
    " WHERE c.country = o.country AND c.tier IS NOT NULL) AS n FROM orders o",
    "join on a non-key column": "SELECT o.order_id, c.id FROM orders o"
    " JOIN customers c ON c.country = o.country WHERE c.credit > 0",
    # Uncorrelated, with an equality: one probe (tier = 'gold') cached for the TTL.
    "uncorrelated IN": "SELECT o.order_id FROM orders o"
    " WHERE o.customer_id IN (SELECT id FROM customers WHERE tier = 'gold')",
    "uncorrelated NOT IN with NULLs": "SELECT o.order_id FROM orders o"
    " WHERE o.customer_id NOT IN (SELECT credit FROM customers WHERE tier = 'gold')",
}
#: A probe whose value reads another table's row (the joined table of a subquery, probed by
#: a non-key column): not known before the batch, so fetched one at a time (checked last).
CHAINED = {
    "join in a subquery on a non-key column": "SELECT o.order_id, (SELECT COUNT(*)"
    " FROM customers a JOIN customers c ON c.country = a.country WHERE a.id = o.customer_id)"
    " AS n FROM orders o",
}
#: Other uncorrelated subqueries need every row at hand: an external table with cache='full'.
FULL_ONLY = {
    "uncorrelated IN without an equality": "SELECT o.order_id FROM orders o"
    " WHERE o.customer_id IN (SELECT id FROM customers WHERE tier <> 'basic')",
    "uncorrelated aggregate": "SELECT o.order_id, o.amount > (SELECT AVG(credit) FROM customers)"
    " AS big FROM orders o",
}


def orders() -> list[dict[str, Any]]:
    ids = [1, 2, 3, 4, 5, 6, 7, 8, None, 1, 3, 5, 42]
    countries = ["FR", "DE", "US", None, "IT"]
    return [
        {
            "order_id": n,
            "customer_id": cid,
            "amount": Decimal(f"{n}.{n % 10}0"),
            "country": countries[n % len(countries)],
        }
        for n, cid in enumerate(ids)
    ]


async def run(sql: str, table: Table, prefetch: bool = True) -> bytes:
    q = compile_query(sql, {"customers": table})
    try:
        recs = orders()
        out: list[Any] = []
        for start in range(0, len(recs), 5):  # batches of 5 records, as the agent runs them
            batch = recs[start : start + 5]
            if prefetch and q.prefetcher is not None:
                await q.prefetcher.fetch([(r, None, 0) for r in batch])
            for r in batch:
                # The rows one record joins with come in no defined order (a probe's matches):
                # compared as a sorted list per record.
                out.append(sorted(q.process(r), key=dumps))
        return dumps(out)
    finally:
        q.close()


async def expected(query: str) -> bytes:
    """The output of ``query`` over the rows in a Kafka-kind (in-memory) table."""
    kafka = declaration("customers", "topic='customers'") + STREAM + query
    return await run(kafka, memory_table("customers", CUSTOMERS))


async def same_outputs(
    table: Table, options: str, queries: dict[str, str], prefetch: bool = True
) -> None:
    """Each query over ``table`` (declared WITH ``options``) gives the Kafka-kind table's bytes."""
    for name, query in queries.items():
        sql = declaration("customers", options) + STREAM + query
        assert await run(sql, table, prefetch) == await expected(query), name


#: The stores the rows are in: a test of each against the Kafka-kind table.
SOURCES = ["postgres", "duckdb", "clickhouse-chdb", "clickhouse-server"]


@pytest.fixture
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The CUSTOMERS rows in the store a test names (``request.param``): its WITH options. The
    store's server is asked for here, so a test of one store does not start the others'."""
    source: str = getattr(request, "param", "postgres")
    name = unique_table()
    if source == "postgres":
        pg: PostgresCluster = request.getfixturevalue("postgres")
        pg_table(pg, name, CUSTOMERS)
        return f"connector='postgres', dsn='{pg.dsn()}', table='public.{name}'"
    if source == "duckdb":
        duck = tmp_path / "crm.duckdb"
        duck_file(duck, "customers", CUSTOMERS)
        return f"connector='duckdb', path='{duck}', table='customers'"
    if source == "clickhouse-chdb":
        path: Path = request.getfixturevalue("chdb_path")
        chdb_table(path, f"crm.{name}", CUSTOMERS)
        return f"connector='clickhouse', path='{path}', table='crm.{name}'"
    server: ClickHouseServer = request.getfixturevalue("clickhouse")
    server_table(server, name, CUSTOMERS)
    url = server.url("reader", READER_PASSWORD)
    return f"connector='clickhouse', url='{url}', table='{name}'"


@pytest.mark.parametrize("cache", ["partial", "none", "full"])
@pytest.mark.parametrize("store", SOURCES, indirect=True)
async def test_same_outputs_as_a_kafka_kind_table(store: str, cache: str) -> None:
    options = f"{store}, cache='{cache}'"
    table = external(declaration("customers", options), "customers")
    try:
        await same_outputs(table, options, {**QUERIES, **(FULL_ONLY if cache == "full" else {})})
        if cache != "full":
            # The fetched keys came in one round trip per batch and table (not per record).
            stats = table.stats().as_dict()
            assert stats["round_trips"] > 0
            assert stats["single_fetches"] == 0
        await same_outputs(table, options, CHAINED)
    finally:
        table.close_sync()


@pytest.mark.parametrize("store", ["postgres", "clickhouse-server"], indirect=True)
async def test_without_prefetch_each_miss_is_one_fetch(store: str) -> None:
    """The offline path (no batch ahead): the same answers, a round trip per distinct miss."""
    options = store
    table = external(declaration("customers", options), "customers")
    try:
        await same_outputs(
            table, options, {"left join": QUERIES["left join with misses"]}, prefetch=False
        )
        stats = table.stats().as_dict()
        distinct = {r["customer_id"] for r in orders() if r["customer_id"] is not None}
        assert stats["single_fetches"] == len(distinct)
        assert stats["negative_hits"] == 0  # 1, 3, 5 were hits the second time
        assert stats["hits"] == 3
    finally:
        table.close_sync()


async def test_iceberg_gives_the_same_outputs(tmp_path: Path) -> None:
    """An Iceberg table holding the rows (its current snapshot): every query, the ones that
    need every row at hand too, and the chained probe."""
    from sources.iceberg import IcebergTable
    from tests.support.iceberg import Lake
    from tests.support.iceberg import customers as iceberg_customers

    lake = Lake(tmp_path)
    iceberg_customers(lake, "crm.customers", CUSTOMERS)
    options = lake.options("crm.customers")
    table = connected(declaration("customers", options), "customers")
    assert isinstance(table, IcebergTable)
    try:
        await same_outputs(table, options, {**QUERIES, **FULL_ONLY, **CHAINED})
    finally:
        table.close_sync()
