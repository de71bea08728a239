"""Exactly-once over a PostgreSQL table: a real worker (``processing_guarantee=exactly_once``)
joins a Kafka stream with the table in a stateless query and in a repartitioned aggregate (the
join runs in stage 2). Exact outputs, read with read_committed; and the lookups of both went to
PostgreSQL a batch at a time — prefetched, never fetched record by record (issue 12/9: the
transactional steps ran their batches without the prefetch)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.broker import Broker
from core import codec
from tables.topics import TopicSpec, ensure_topics
from tests.integration.agents.support import processed, queries, until
from tests.support.federation import pg_table, unique_table
from tests.support.kafka import produce, read_all, unique
from tests.support.postgres import PostgresCluster
from tests.support.worker import Worker, get_json

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.kafka_only]

PIPELINE = """
CREATE TABLE customers (id BIGINT, tier VARCHAR, credit DECIMAL(12,2), country VARCHAR,
                        PRIMARY KEY (id))
  WITH (connector='postgres', dsn='{dsn}', table='public.{table}', cache='partial');
-- The same rows as a second table: the aggregate's lookups counted apart from the stream's.
CREATE TABLE accounts (id BIGINT, tier VARCHAR, credit DECIMAL(12,2), country VARCHAR,
                       PRIMARY KEY (id))
  WITH (connector='postgres', dsn='{dsn}', table='public.{table}', cache='partial');
CREATE STREAM orders (order_id BIGINT, customer_id BIGINT, amount DECIMAL(10,2))
  WITH (topic='{orders}', partitions='4');

CREATE STREAM enriched WITH (topic='{enriched}') AS
SELECT o.order_id, c.tier, o.amount + c.credit AS total
FROM orders o LEFT JOIN customers c ON c.id = o.customer_id
WHERE NOT EXISTS (SELECT 1 FROM customers b WHERE b.id = o.customer_id AND b.tier = 'blocked')
EMIT CHANGES;

CREATE TABLE spend WITH (topic='{spend}') AS
SELECT o.customer_id, COUNT(*) AS n, SUM(o.amount) AS amount
FROM orders o JOIN accounts a ON a.id = o.customer_id
WHERE a.tier = 'gold'
GROUP BY o.customer_id EMIT CHANGES;
"""

#: Customers 1..60 in PostgreSQL; orders also name 61..80 (misses).
CUSTOMERS = {
    i: ("blocked" if i % 5 == 0 else "basic" if i % 3 == 0 else "gold", Decimal(i) / 4, "FR")
    for i in range(1, 61)
}
ORDERS: list[dict[str, Any]] = [
    {"order_id": i, "customer_id": i * 7 % 80 + 1, "amount": Decimal(f"{i}.25")} for i in range(400)
]


def enriched_row(order: dict[str, Any]) -> dict[str, Any] | None:
    tier, credit, _ = CUSTOMERS.get(order["customer_id"], (None, None, None))
    if tier == "blocked":
        return None
    total = None if credit is None else order["amount"] + credit
    return {"order_id": order["order_id"], "tier": tier, "total": total}


async def committed(servers: str, topic: str, want: int) -> list[dict[str, Any]]:
    """The committed records of ``topic`` (read_committed), once there are ``want`` of them
    (or after 15 s: what is there, for the assertion to show)."""
    deadline = time.monotonic() + 15
    while True:
        got = await read_all(servers, topic, isolation_level="read_committed")
        if len(got) >= want or time.monotonic() > deadline:
            return [codec.loads_exact(r.value) for r in got]
        await asyncio.sleep(0.2)


def source_stats(worker: Worker, table: str) -> dict[str, Any]:
    """``table``'s stats as ``/tables/`` shows them."""
    status, body = get_json(f"{worker.web}/tables/")
    assert status == 200
    return next(t for t in body["tables"] if t["name"] == table)


async def test_exactly_once_prefetches_postgres_lookups(
    broker: Broker, postgres: PostgresCluster, tmp_path: Path, workers: list[Worker]
) -> None:
    table = unique_table()
    pg_table(postgres, table, CUSTOMERS)
    names = {n: unique(n) for n in ("orders", "enriched", "spend", "dlq")}
    pipeline = tmp_path / "eos_federated.sql"
    pipeline.write_text(PIPELINE.format(dsn=postgres.dsn(), table=table, **names))
    await ensure_topics(broker.url, [TopicSpec(names["orders"], 4)])
    await produce(
        broker.url, names["orders"], [(str(o["order_id"]).encode(), codec.dumps(o)) for o in ORDERS]
    )
    env = {
        "TABLESTREAM_BROKER": broker.url,
        "TABLESTREAM_APP_ID": unique("app"),
        "TABLESTREAM_PIPELINE": str(pipeline),
        "TABLESTREAM_DLQ_TOPIC": names["dlq"],
        "TABLESTREAM_DEFAULT_PARTITIONS": "4",
        "TABLESTREAM_PROCESSING_GUARANTEE": "exactly_once",
        # Several batches per partition: each one's keys prefetched, the later ones partly cached.
        "TABLESTREAM_QUERY_MAX_RECORDS": "50",
    }
    worker = Worker(tmp_path / "w", env).start()
    workers.append(worker)
    await until(processed(worker, "enriched", len(ORDERS)), "enriched to read the orders", worker)
    await until(processed(worker, "spend", len(ORDERS)), "spend to read the orders", worker)

    want = [e for o in ORDERS if (e := enriched_row(o)) is not None]
    got = await committed(broker.url, names["enriched"], len(want))
    assert sorted(got, key=lambda r: r["order_id"]) == want

    # The aggregate (EMIT CHANGES): each gold customer's running count 1..n once, its last row
    # the total of its orders.
    gold = [o for o in ORDERS if CUSTOMERS.get(o["customer_id"], ("",))[0] == "gold"]
    orders_of = Counter(o["customer_id"] for o in gold)
    rows = await committed(broker.url, names["spend"], len(gold))
    by_customer: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        by_customer.setdefault(r["customer_id"], []).append(r)
    assert set(by_customer) == set(orders_of)
    for cid, n in orders_of.items():
        assert sorted(r["n"] for r in by_customer[cid]) == list(range(1, n + 1)), cid
        last = max(by_customer[cid], key=lambda r: r["n"])
        assert last["amount"] == sum(o["amount"] for o in gold if o["customer_id"] == cid)

    # Every lookup came from a batch's prefetch: round trips per batch, none per record.
    distinct = len({o["customer_id"] for o in ORDERS})
    stream = queries(worker)["enriched"]["sources"]["customers"]
    aggregate = await asyncio.to_thread(source_stats, worker, "accounts")
    for name, stats in (("customers", stream), ("accounts", aggregate)):
        assert stats["single_fetches"] == 0, (name, stats)
        assert 1 <= stats["round_trips"] < distinct, (name, stats)
        assert stats["lookups"] >= len(gold), (name, stats)
