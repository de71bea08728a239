"""The broker is away while the worker starts, then goes away mid-run, each time coming back on
the same log directories: the worker waits for it (``/ready`` says 503 meanwhile), reconnects,
loses no output, and its tables stay ready through the mid-run outage."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path

import pytest

from app.broker import Broker
from core import codec
from tests.integration.agents.support import (
    encoded,
    gold_orders,
    seeded_pipeline,
    until,
)
from tests.support.kafka import produce, read_all
from tests.support.worker import Worker, get_json

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.kafka_only]


async def test_worker_rides_out_broker_outages(
    fresh_broker: Broker, tmp_path: Path, workers: list[Worker]
) -> None:
    broker = fresh_broker
    names, env = await seeded_pipeline(broker.url, tmp_path)
    await produce(broker.url, names["orders"], encoded(gold_orders(0, 300)))
    worker = Worker(tmp_path / "w", env)

    def checked_ids() -> set[int]:
        sink = asyncio.run(read_all(broker.url, names["checked"]))  # `until` runs it in a thread
        return {codec.loads(r.value)["order_id"] for r in sink}

    def ready() -> tuple[int, object]:
        try:
            return get_json(f"{worker.web}/ready")
        except OSError:  # the web server is not listening yet
            return 0, None

    # Start-up during an outage: the worker waits for the broker instead of stopping.
    broker.stop()
    workers.append(worker.start())
    status, waiting = await until(
        lambda: ready()[0] == 503 and ready(), "/ready while the broker is away", worker
    )
    assert "broker" in waiting["waiting_for"]
    await until(
        lambda: f"start-up: reach the broker failed: broker {broker.url}" in worker.tail(),
        "the worker to log its retries",
        worker,
    )
    await asyncio.to_thread(broker.start)  # same ports, same log directories
    await until(lambda: ready()[0] == 200, "/ready once the broker is back", worker, 90)
    await until(lambda: checked_ids() >= set(range(300)), "the orders of before", worker)

    # Mid-run.
    broker.stop()
    status, outage = await until(
        lambda: ready()[0] == 503 and ready(), "/ready to see the outage", worker
    )
    assert status == 503
    assert outage["ready"] is False
    assert outage["waiting_for"] == ["broker"]  # the tables stay ready
    status, users = get_json(f"{worker.web}/tables/users/1")  # tables serve from local state
    assert status == 200
    assert users["value"]["name"] == "ann"
    await asyncio.sleep(3)  # the worker's clients retry against nothing for a while

    started = time.monotonic()
    await asyncio.to_thread(broker.start)
    await until(lambda: ready()[0] == 200, "/ready after the restart", worker, 90)
    await produce(broker.url, names["orders"], encoded(gold_orders(300, 300)))
    await until(
        lambda: checked_ids() >= set(range(600)), "every order after the restart", worker, 120
    )
    assert worker.proc is not None
    assert worker.proc.poll() is None
    assert time.monotonic() - started < 120

    def totals_of_ann() -> object:
        sink = asyncio.run(read_all(broker.url, names["totals"]))
        latest = [codec.loads(r.value) for r in sink if r.value is not None]
        return [t for t in latest if t["user_id"] == 1][-1:] or None

    def all_counted() -> bool:
        last = totals_of_ann()
        return isinstance(last, list) and last[0]["orders"] >= 600

    await until(all_counted, "`totals` to count every order", worker, 60)
    assert await asyncio.to_thread(totals_of_ann) == [
        {"user_id": 1, "orders": 600, "notional": Decimal("600.00")}
    ]
    status, body = get_json(f"{worker.web}/tables/users/?limit=10")
    assert status == 200
    assert body["table"]["ready"] is True
