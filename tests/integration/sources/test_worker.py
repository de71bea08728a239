"""A real worker (``faust -A app worker``) runs a pipeline joining a Kafka stream with a
PostgreSQL table: exact outputs (JOIN with misses, NOT EXISTS, a scalar subquery, DECIMAL, NULL),
per-source stats in ``/queries/``, the table in ``/tables/``; no password anywhere."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from app.broker import Broker
from core import codec
from tests.integration.agents.support import queries
from tests.support.federation import (
    CUSTOMERS,
    enrich_orders,
    pg_table,
    unique_table,
)
from tests.support.kafka import unique
from tests.support.postgres import PostgresCluster
from tests.support.worker import Worker, get_json

pytestmark = [pytest.mark.broker, pytest.mark.slow]

PIPELINE = """
CREATE TABLE customers (id BIGINT, tier VARCHAR, credit DECIMAL(12,2), country VARCHAR,
                        PRIMARY KEY (id))
  WITH (connector='postgres', dsn='{dsn}', table='public.{table}', cache='partial',
        cache_ttl='60s', cache_missing_ttl='60s');
CREATE STREAM orders (order_id BIGINT, customer_id BIGINT, amount DECIMAL(10,2))
  WITH (topic='{orders}', partitions='2');

CREATE STREAM enriched WITH (topic='{enriched}') AS
SELECT o.order_id, c.tier, c.credit, o.amount + c.credit AS total,
       (SELECT country FROM customers k WHERE k.id = o.customer_id + 1) AS next_country
FROM orders o LEFT JOIN customers c ON c.id = o.customer_id
WHERE NOT EXISTS (SELECT 1 FROM customers b WHERE b.id = o.customer_id AND b.tier = 'blocked')
EMIT CHANGES;
"""


def expected(order: dict[str, Any]) -> dict[str, Any] | None:
    row = CUSTOMERS.get(order["customer_id"])
    if row is not None and row[0] == "blocked":
        return None
    tier, credit, _ = row if row is not None else (None, None, None)
    nxt = CUSTOMERS.get(order["customer_id"] + 1)
    return {
        "order_id": order["order_id"],
        "tier": tier,
        "credit": credit,
        "total": None if credit is None else order["amount"] + credit,
        "next_country": None if nxt is None else nxt[2],
    }


async def test_worker_joins_a_kafka_stream_with_postgres(
    broker: Broker, postgres: PostgresCluster, tmp_path: Path, workers: list[Worker]
) -> None:
    table = unique_table()
    pg_table(postgres, table, CUSTOMERS)
    names = {n: unique(n) for n in ("orders", "enriched", "dlq")}
    pipeline = tmp_path / "federated.sql"
    dsn = postgres.dsn(password="s3cret")
    pipeline.write_text(PIPELINE.format(dsn=dsn, table=table, **names))
    orders = [
        {"order_id": i, "customer_id": cid, "amount": codec.loads_exact(f"{i}.25")}
        for i, cid in enumerate([1, 2, 3, 4, 5, 6, 7, 1, 3, 9, 5, 2])
    ]
    worker = await enrich_orders(broker.url, tmp_path, pipeline, names, orders, workers, expected)

    q = queries(worker)["enriched"]
    source = q["sources"]["customers"]
    assert source["kind"] == "postgres"
    assert source["breaker"]["state"] == "closed"
    assert source["round_trips"] >= 1
    # Keys are fetched per batch, never per record: fewer round trips than distinct keys.
    distinct = {o["customer_id"] for o in orders} | {o["customer_id"] + 1 for o in orders}
    assert source["round_trips"] < len(distinct)
    assert source["single_fetches"] == 0
    assert source["hits"] + source["negative_hits"] >= len(orders)
    status, body = await asyncio.to_thread(get_json, f"{worker.web}/tables/")
    assert status == 200
    assert "customers" in str(body)
    for text in (str(q), str(body), worker.log.read_text(errors="replace")):
        assert "s3cret" not in text
