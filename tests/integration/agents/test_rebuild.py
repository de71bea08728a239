"""Aggregate state is never trusted blindly: a worker restarted on a new broker (same topic names,
other records) finds its stored offsets do not fit and rebuilds from the earliest offset."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.broker import Broker
from core import codec
from tables.topics import TopicSpec, ensure_topics
from tests.integration.agents.support import (
    encoded,
    processed,
    queries,
    seed_tables,
    topics,
    until,
    worker_env,
    write_pipeline,
)
from tests.support.kafka import produce, read_all
from tests.support.worker import Worker

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def orders(first: int, n: int, qty: int) -> list[dict[str, Any]]:
    return [
        {
            "order_id": i,
            "user_id": 1 + i % 3,
            "symbol": "AAPL",
            "price": Decimal("1.25"),
            "qty": qty,
        }
        for i in range(first, first + n)
    ]


def totals(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for o in items:
        t = out.setdefault(str(o["user_id"]), {"user_id": o["user_id"], "orders": 0, "notional": 0})
        t["orders"] += 1
        t["notional"] += o["price"] * o["qty"]
    return out


async def run_once(
    broker: Broker,
    tmp_path: Path,
    names: dict[str, str],
    items: list[dict[str, Any]],
    workers: list[Worker],
) -> tuple[Worker, dict[str, Any]]:
    await seed_tables(broker.url, names)
    await ensure_topics(broker.url, [TopicSpec(names["orders"], 2)])
    await produce(broker.url, names["orders"], encoded(items))
    env = worker_env(broker.url, write_pipeline(tmp_path, names), names)
    env["TABLESTREAM_APP_ID"] = "rebuild-app"
    worker = Worker(tmp_path / "w", env).start()
    workers.append(worker)  # stopped by the fixture whatever happens
    await until(processed(worker, "totals", len(items)), "totals to read every order", worker)
    expected = totals(items)

    async def sink() -> dict[str, Any]:
        return {
            r.key.decode(): codec.loads_exact(r.value)
            for r in await read_all(broker.url, names["totals"])
        }

    got: dict[str, Any] = {}
    for _ in range(50):
        got = await sink()
        if got == expected:
            break
    assert got == expected
    return worker, queries(worker)["totals"]


async def test_state_of_another_broker_is_rebuilt(
    broker: Broker, other_broker: Broker, tmp_path: Path, workers: list[Worker]
) -> None:
    names = topics()
    worker, stats = await run_once(broker, tmp_path, names, orders(0, 300, qty=2), workers)
    assert stats["rebuilds"] == 0
    worker.stop()
    # Same topic names, fewer and different records: the stored offsets point past the end.
    worker, stats = await run_once(other_broker, tmp_path, names, orders(1000, 120, qty=5), workers)
    assert stats["rebuilds"] >= 1
    assert "rebuilding from the earliest offset" in worker.log.read_text()
    worker.stop()
