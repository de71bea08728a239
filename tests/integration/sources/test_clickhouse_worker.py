"""A real worker (``faust -A app worker``) joins a Kafka stream with two ClickHouse tables, one
on a server (HTTP) and one embedded (chdb, in the worker's process): INNER and LEFT joins, an
IN and an EXISTS subquery; exact outputs, per-source stats, no password anywhere."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.broker import Broker
from tests.integration.agents.support import queries
from tests.support.clickhouse import READER_PASSWORD, ClickHouseServer, chdb_table, server_table
from tests.support.federation import (
    CUSTOMERS,
    enrich_orders,
    unique_table,
)
from tests.support.kafka import unique
from tests.support.worker import Worker

pytestmark = [pytest.mark.broker, pytest.mark.slow]

#: The server holds the customers; chdb their loyalty points (id → points), a subset of them.
POINTS = {1: (Decimal("10.5"),), 3: (Decimal("0"),), 6: (Decimal("99.25"),)}
PIPELINE = """
CREATE TABLE customers (id BIGINT, tier VARCHAR, credit DECIMAL(12,2), country VARCHAR,
                        PRIMARY KEY (id))
  WITH (connector='clickhouse', url='{url}', table='{table}', cache='partial');
CREATE TABLE points (id BIGINT, points DECIMAL(10,2), PRIMARY KEY (id))
  WITH (connector='clickhouse', path='{path}', table='{points}', cache='none');
CREATE STREAM orders (order_id BIGINT, customer_id BIGINT) WITH (topic='{orders}', partitions='2');

CREATE STREAM enriched WITH (topic='{enriched}') AS
SELECT o.order_id, c.tier, c.credit, p.points,
       o.customer_id IN (SELECT id FROM points q WHERE q.id = o.customer_id) AS has_points
FROM orders o JOIN customers c ON c.id = o.customer_id
LEFT JOIN points p ON p.id = o.customer_id
WHERE NOT EXISTS (SELECT 1 FROM customers b WHERE b.id = o.customer_id AND b.tier = 'blocked')
EMIT CHANGES;
"""


def expected(order: dict[str, Any]) -> dict[str, Any] | None:
    row = CUSTOMERS.get(order["customer_id"])
    if row is None or row[0] == "blocked":  # INNER JOIN: no customer, no output
        return None
    points = POINTS.get(order["customer_id"])
    return {
        "order_id": order["order_id"],
        "tier": row[0],
        "credit": row[1],
        "points": None if points is None else points[0].quantize(Decimal("0.01")),
        "has_points": points is not None,
    }


async def test_worker_joins_a_stream_with_a_server_and_an_embedded_table(
    broker: Broker,
    clickhouse: ClickHouseServer,
    chdb_path: Path,
    tmp_path: Path,
    workers: list[Worker],
) -> None:
    table = unique_table()
    server_table(clickhouse, table, CUSTOMERS)
    points = f"loyalty.{unique_table('points')}"
    # The worker process opens the same chdb path (this process has no session open on it).
    chdb_table(chdb_path, points, POINTS, "id Int64, points Decimal(10, 2)")
    names = {n: unique(n) for n in ("orders", "enriched", "dlq")}
    pipeline = tmp_path / "clickhouse.sql"
    url = clickhouse.url("reader", READER_PASSWORD)
    pipeline.write_text(
        PIPELINE.format(url=url, table=table, path=chdb_path, points=points, **names)
    )
    orders = [
        {"order_id": i, "customer_id": cid}
        for i, cid in enumerate([1, 2, 3, 4, 5, 6, 7, 1, 3, 9, 5, 6])
    ]
    worker = await enrich_orders(broker.url, tmp_path, pipeline, names, orders, workers, expected)

    sources = queries(worker)["enriched"]["sources"]
    assert sources["customers"]["kind"] == "clickhouse"
    assert sources["customers"]["source"].startswith("clickhouse http://127.0.0.1:")
    assert sources["points"]["source"].startswith(f"clickhouse chdb path={chdb_path}")
    for source in sources.values():
        assert source["breaker"]["state"] == "closed"
        assert source["single_fetches"] == 0
        # Keys fetched per batch, never per record.
        assert 1 <= source["round_trips"] < len(orders)
    for text in (str(sources), worker.log.read_text(errors="replace")):
        assert READER_PASSWORD not in text
