"""Cache behaviour against a real PostgreSQL: a row updated there is seen after its TTL and not
before; a missing key is cached as missing for its own TTL; the LRU keeps at most max rows; a
full cache's refresh sees inserts, updates and deletes (and publishes them to maintained
subquery results)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

from sql import compile_query
from tests.support.federation import (
    CUSTOMERS,
    column,
    declaration,
    lookup_table,
    pg_table,
    snapshot_table,
    unique_table,
)
from tests.support.postgres import PostgresCluster


def options(pg: PostgresCluster, name: str, extra: str) -> str:
    return f"connector='postgres', dsn='{pg.dsn()}', table='public.{name}', {extra}"


async def test_an_update_is_seen_after_the_ttl_and_not_before(postgres: PostgresCluster) -> None:
    name = unique_table()
    pg_table(postgres, name, CUSTOMERS)
    table = lookup_table(declaration("c", options(postgres, name, "cache_ttl='2s'")), "c")
    try:
        await table.prefetch(None, [1])
        fetched = time.monotonic()
        assert column(table, 1, "tier") == "gold"
        postgres.execute(f"UPDATE {name} SET tier = 'silver' WHERE id = 1")
        await table.prefetch(None, [1])  # a new batch: the entry is fresh, nothing is sent
        assert column(table, 1, "tier") == "gold"
        assert time.monotonic() - fetched < 2  # (the check above ran within the TTL)
        await asyncio.sleep(2.1 - (time.monotonic() - fetched))
        await table.prefetch(None, [1])
        assert column(table, 1, "tier") == "silver"
        stats = table.stats().as_dict()
        assert stats["round_trips"] == 2
    finally:
        table.close_sync()


async def test_missing_keys_are_cached_for_the_missing_ttl(postgres: PostgresCluster) -> None:
    name = unique_table()
    pg_table(postgres, name, CUSTOMERS)
    extra = "cache_ttl='60s', cache_missing_ttl='1s'"
    table = lookup_table(declaration("c", options(postgres, name, extra)), "c")
    try:
        await table.prefetch(None, [99, 1])
        assert table.get(99) is None
        postgres.execute(f"INSERT INTO {name} VALUES (99, 'new', 1.00, 'FR')")
        await table.prefetch(None, [99])
        assert table.get(99) is None  # a negative hit: not asked again yet
        assert table.stats().as_dict()["negative_hits"] == 2
        await asyncio.sleep(1.1)
        await table.prefetch(None, [99, 1])  # 1 is still fresh: only 99 is sent
        assert column(table, 99, "tier") == "new"
        stats = table.stats().as_dict()
        assert stats["round_trips"] == 2
        assert stats["keys_per_round_trip"] == 1.5
    finally:
        table.close_sync()


async def test_the_lru_keeps_at_most_max_rows(postgres: PostgresCluster) -> None:
    name = unique_table()
    pg_table(postgres, name, CUSTOMERS)
    table = lookup_table(declaration("c", options(postgres, name, "cache_max_rows='2'")), "c")
    try:
        await table.prefetch(None, [1, 2, 3])
        assert table.stats().as_dict()["cached_rows"] == 2
    finally:
        table.close_sync()


async def test_a_full_refresh_sees_inserts_updates_and_deletes(postgres: PostgresCluster) -> None:
    name = unique_table()
    pg_table(postgres, name, CUSTOMERS)
    decl = declaration("customers", options(postgres, name, "cache='full', refresh='1h'"))
    table = snapshot_table(decl, "customers")
    sql = (
        decl + "CREATE STREAM orders (order_id BIGINT, customer_id BIGINT) WITH (topic='o');\n"
        "SELECT o.order_id FROM orders o"
        " WHERE o.customer_id IN (SELECT id FROM customers WHERE tier = 'gold')"
    )
    q = compile_query(sql, {"customers": table})
    try:
        assert "maintained IN-set" in q.explain()
        assert len(table) == len(CUSTOMERS)
        assert q.process({"order_id": 1, "customer_id": 1}) == [{"order_id": 1}]
        assert q.process({"order_id": 2, "customer_id": 2}) == []
        postgres.execute(f"UPDATE {name} SET tier = 'gold' WHERE id = 2")
        postgres.execute(f"DELETE FROM {name} WHERE id = 1")
        postgres.execute(f"INSERT INTO {name} VALUES (7, 'gold', NULL, NULL)")
        assert q.process({"order_id": 3, "customer_id": 1}) == [{"order_id": 3}]  # not yet
        assert await table.refresh()
        assert q.process({"order_id": 4, "customer_id": 1}) == []
        assert q.process({"order_id": 5, "customer_id": 2}) == [{"order_id": 5}]
        assert q.process({"order_id": 6, "customer_id": 7}) == [{"order_id": 6}]
        assert table.get(1) is None
        assert len(table) == len(CUSTOMERS)
    finally:
        q.close()
        table.close_sync()


async def test_the_refresh_timer_of_a_started_table(postgres: PostgresCluster) -> None:
    name = unique_table()
    pg_table(postgres, name, CUSTOMERS)
    decl = declaration("c", options(postgres, name, "cache='full', refresh='300ms'"))
    table = snapshot_table(decl, "c", open_now=False)
    await table.start()
    try:
        assert await table.wait_until_ready(10)
        postgres.execute(f"INSERT INTO {name} VALUES (8, 'gold', NULL, NULL)")
        deadline = time.monotonic() + 10
        while table.get(8) is None and time.monotonic() < deadline:  # noqa: ASYNC110 - polls
            await asyncio.sleep(0.05)
        assert table.get(8) == {"id": 8, "tier": "gold", "credit": None, "country": None}
        assert table.stats().as_dict()["refreshes"] >= 2
    finally:
        await table.stop()


async def test_timestamps_keep_their_zone_and_decimals_their_scale(
    postgres: PostgresCluster,
) -> None:
    name = unique_table("events")
    postgres.execute(
        f"CREATE TABLE {name} (id bigint PRIMARY KEY, at timestamptz, amount numeric(10,3))"
    )
    postgres.execute(
        f"INSERT INTO {name} VALUES (1, '2026-03-01 12:00:00+02', 1.500), (2, NULL, NULL)"
    )
    decl = (
        "CREATE TABLE e (id BIGINT, at TIMESTAMP, amount DECIMAL(10,3), PRIMARY KEY (id))"
        f" WITH (connector='postgres', dsn='{postgres.dsn()}', table='{name}');\n"
    )
    table = lookup_table(decl, "e")
    try:
        await table.prefetch(None, [1, 2])
        at = column(table, 1, "at")
        assert at == dt.datetime(2026, 3, 1, 10, 0, tzinfo=dt.UTC)
        assert at.utcoffset() == dt.timedelta(0)
        assert str(column(table, 1, "amount")) == "1.500"
        assert table.get(2) == {"id": 2, "at": None, "amount": None}
    finally:
        table.close_sync()
