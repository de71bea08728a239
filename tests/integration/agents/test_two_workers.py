"""Two workers of one app: a stateless query's partitions are shared through its consumer group,
and so are a stateful query's (its repartition topic's: each worker aggregates its share); the
totals table, read from the sink topic, is right on both workers."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.broker import Broker
from core import codec
from tests.integration.agents.support import (
    USERS,
    encoded,
    queries,
    seeded_pipeline,
    until,
)
from tests.support.kafka import produce, read_all
from tests.support.worker import Worker, get_json

pytestmark = [pytest.mark.broker, pytest.mark.slow]

ORDERS = 4_000


async def test_two_workers_share_stateless_work(
    broker: Broker, tmp_path: Path, workers: list[Worker]
) -> None:
    names, env = await seeded_pipeline(broker.url, tmp_path, 4)
    workers += [Worker(tmp_path / n, env).start() for n in ("a", "b")]

    def both_assigned() -> bool:
        stats = [queries(w).get("checked", {}) for w in workers]
        parts = [set(s.get("partitions", {})) for s in stats]
        # Each worker owns part of the source once the group settled (lag known per partition).
        return all(parts) and not (parts[0] & parts[1]) and len(parts[0] | parts[1]) == 4

    for w in workers:

        def loaded(w: Worker = w) -> bool:
            return bool(w.table("users")["size"] == len(USERS))

        await until(loaded, "users", w)
    orders: list[dict[str, Any]] = [
        {
            "order_id": i,
            "user_id": 1 + i % 3,
            "symbol": "MSFT",
            "price": Decimal("0.25"),
            "qty": 1 + i % 5,
        }
        for i in range(ORDERS)
    ]
    # Produced once the group is split: on Apache Kafka (no join delay) a first worker alone
    # could otherwise read everything before the second one joins.
    await until(both_assigned, "the checked group to split the partitions", workers[0], 90)
    await produce(broker.url, names["orders"], encoded(orders))

    def all_read() -> bool:
        stats = [queries(w) for w in workers]
        shared: int = sum(s["checked"]["records_in"] for s in stats)
        totals: int = sum(s["totals"]["records_in"] for s in stats)
        return shared >= ORDERS and totals >= ORDERS

    await until(all_read, "every order read", workers[0], 90)
    stats = [queries(w) for w in workers]
    assert all(s["checked"]["records_in"] > 0 for s in stats)

    gold = {u for u, (_, tier) in USERS.items() if tier == "gold"}
    want = {o["order_id"] for o in orders if o["user_id"] in gold}
    seen: set[int] = set()
    for _ in range(50):
        seen = {
            codec.loads(r.value)["order_id"] for r in await read_all(broker.url, names["checked"])
        }
        if seen >= want:
            break
        await asyncio.sleep(0.2)
    assert seen == want

    expected: dict[str, Any] = {}
    for o in orders:
        t = expected.setdefault(str(o["user_id"]), {"orders": 0, "notional": Decimal(0)})
        t["orders"] += 1
        t["notional"] += o["price"] * o["qty"]
    for w in workers:

        def totals(w: Worker = w) -> bool:
            status, body = get_json(f"{w.web}/tables/totals/?limit=10")
            if status != 200:
                return False
            got = {r["key"]: r["value"] for r in body["rows"]}
            return {
                k: {"orders": v["orders"], "notional": Decimal(str(v["notional"]))}
                for k, v in got.items()
            } == expected

        await until(totals, "the totals table on each worker", w)
