"""A temporal join run by a worker: orders joined with a versioned prices table as of each order's
event time get the historical price, not the latest — also after the worker restarts, when the
history comes from its RocksDB store, not from re-reading the topic."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from app.broker import Broker
from core import codec
from tables.topics import TopicSpec, ensure_topics
from tests.integration.agents.support import processed, until, worker_env
from tests.support.kafka import produce, read_all, unique
from tests.support.worker import Worker, get_json

pytestmark = [pytest.mark.broker, pytest.mark.slow]

BASE = 1_700_000_000_000
DAY = 86_400_000
PIPELINE = """\
CREATE TABLE prices (sku VARCHAR PRIMARY KEY, price DECIMAL(10,2))
  WITH (topic='{prices}', versions='10', history_retention='7d');
CREATE STREAM orders (order_id BIGINT, sku VARCHAR, qty BIGINT, ts BIGINT)
  WITH (topic='{orders}', partitions='1');

CREATE STREAM priced WITH (topic='{priced}') AS
SELECT o.order_id, o.sku, p.price, o.qty * p.price AS notional
FROM orders o JOIN prices FOR SYSTEM_TIME AS OF o.ts AS p ON p.sku = o.sku
EMIT CHANGES;
"""
# (sku, price or None for a delete, Kafka record timestamp - BASE), in arrival order.
PRICES: list[tuple[str, str | None, int]] = [
    ("A", "10.00", 1000),
    ("B", "5.00", 1500),
    ("A", "11.00", 2000),
    ("B", None, 2500),  # B withdrawn: orders in [2500, 4000) find no price
    ("A", "12.00", 3000),
    ("A", "10.50", 1500),  # late: belongs between 1000 and 2000, the latest stays 12.00
    ("B", "6.00", 4000),
]
# (order id, sku, event time - BASE): before, at, between and after the price changes.
ORDERS: list[tuple[int, str, int]] = [
    (1, "A", 500),  # before A's first price: no row (inner join)
    (2, "A", 1000),  # exactly at a change: that version
    (3, "A", 1700),  # the late record's version
    (4, "A", 2999),
    (5, "A", 60_000),  # after every change: the latest
    (6, "B", 2000),
    (7, "B", 2600),  # after the delete: no row
    (8, "B", 5000),
    (9, "C", 2000),  # no such sku
    (10, "A", -8 * DAY),  # older than the 7-day history: expired, NULL, so no row
]
AFTER_RESTART: list[tuple[int, str, int]] = [
    (11, "A", 1200),
    (12, "B", 3999),  # still deleted
    (13, "A", 2500),
    (14, "B", 4000),
    (15, "A", 10**9),
]


def price_as_of(sku: str, ts: int) -> str | None:
    """The model: the price valid at ``ts`` (latest timestamp at or before it; ties: later)."""
    best: tuple[int, int] | None = None
    price = None
    for arrival, (s, p, t) in enumerate(PRICES):
        if s == sku and t <= ts and (best is None or (t, arrival) > best):
            best, price = (t, arrival), p
    return price


def expected(orders: list[tuple[int, str, int]]) -> list[tuple[bytes, dict[str, Any]]]:
    out = []
    for order_id, sku, ts in orders:
        price = price_as_of(sku, ts) if ts >= -7 * DAY else None
        if price is not None:
            row = {"order_id": order_id, "sku": sku, "price": Decimal(price)}
            out.append((str(order_id).encode(), row | {"notional": Decimal(price) * qty(order_id)}))
    return out


def qty(order_id: int) -> int:
    return order_id % 3 + 1


async def produce_prices(servers: str, topic: str) -> None:
    """One by one, with explicit record timestamps: the table orders versions by them."""
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all")
    await producer.start()
    try:
        for sku, price, t in PRICES:
            value = None if price is None else codec.dumps({"sku": sku, "price": Decimal(price)})
            await (await producer.send(topic, value, key=sku.encode(), timestamp_ms=BASE + t))
    finally:
        await producer.stop()


async def produce_orders(servers: str, topic: str, orders: list[tuple[int, str, int]]) -> None:
    msgs = [
        (
            str(i).encode(),
            codec.dumps({"order_id": i, "sku": sku, "qty": qty(i), "ts": BASE + t}),
        )
        for i, sku, t in orders
    ]
    await produce(servers, topic, msgs)


async def outputs(servers: str, topic: str, n: int) -> list[tuple[bytes, dict[str, Any]]]:
    out: list[Any] = []
    for _ in range(50):
        out = await read_all(servers, topic)
        if len(out) >= n:
            break
        await asyncio.sleep(0.2)
    return sorted(
        ((r.key, codec.loads_exact(r.value)) for r in out), key=lambda kv: kv[1]["order_id"]
    )


def history(worker: Worker, sku: str) -> list[tuple[int, str | None]]:
    """The key's versions from the web view: (timestamp - BASE, price text or None)."""
    status, body = get_json(f"{worker.web}/tables/prices/{sku}/history")
    assert status == 200, body
    return [
        (v["timestamp"] - BASE, None if v["value"] is None else f"{v['value']['price']:.2f}")
        for v in body["versions"]
    ]


def model_history(sku: str) -> list[tuple[int, str | None]]:
    return sorted((t, p) for s, p, t in PRICES if s == sku)


async def test_temporal_join_gets_historical_prices(
    broker: Broker, tmp_path: Path, workers: list[Worker]
) -> None:
    names = {n: unique(n) for n in ("prices", "orders", "priced", "dlq")}
    await ensure_topics(
        broker.url,
        [
            TopicSpec(names["prices"], 1, configs={"cleanup.policy": "compact"}),
            TopicSpec(names["orders"], 1),
        ],
    )
    await produce_prices(broker.url, names["prices"])
    pipeline = tmp_path / "temporal.sql"
    pipeline.write_text(PIPELINE.format(**names))
    env = worker_env(broker.url, pipeline, names)
    worker = Worker(tmp_path / "w", env).start()
    workers.append(worker)

    # The table holds every version, the late one in its place, before any order is produced.
    assert (await until(lambda: worker.table("prices")["size"] == 2, "prices", worker)) is True
    assert history(worker, "A") == model_history("A")
    assert history(worker, "B") == model_history("B")

    await produce_orders(broker.url, names["orders"], ORDERS)
    await until(processed(worker, "priced", len(ORDERS)), "priced to read the orders", worker)
    want = expected(ORDERS)
    assert [r["order_id"] for _, r in want] == [2, 3, 4, 5, 6, 8]
    assert await outputs(broker.url, names["priced"], len(want)) == want

    # Restart on the same data dir: the history is read back from disk, not from the topic.
    worker.stop()
    second = Worker(tmp_path / "w", env).start()
    workers.append(second)
    stats = await until(lambda: second.table("prices"), "prices after the restart", second)
    assert stats["size"] == 2
    assert stats["records_read"] == 0
    assert history(second, "A") == model_history("A")
    await produce_orders(broker.url, names["orders"], AFTER_RESTART)
    await until(
        processed(second, "priced", len(AFTER_RESTART)), "priced to resume", second, timeout=90
    )

    want_after = expected(AFTER_RESTART)
    assert [r["order_id"] for _, r in want_after] == [11, 13, 14, 15]
    got = await outputs(broker.url, names["priced"], len(want) + len(want_after))
    # An order read again after the restart (at-least-once) would repeat its identical row.
    assert all(row in want + want_after for row in got)
    assert all(row in got for row in want + want_after)
    assert {r["order_id"]: r["price"] for _, r in got}[13] == Decimal("11.00")  # not 12.00
