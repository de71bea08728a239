"""A GROUP BY on a joined table's column cannot be repartitioned before its join: the query reads
every partition of its source itself (no repartition stage), says why in the log, and its
aggregates are still exact — including after a restart from its local state."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.broker import Broker
from core import codec
from tables.topics import TopicSpec, ensure_topics
from tests.integration.agents.support import (
    USERS,
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

PIPELINE = """\
CREATE TABLE users (id BIGINT PRIMARY KEY, name VARCHAR, tier VARCHAR) WITH (topic='{users}');
CREATE STREAM orders (order_id BIGINT, user_id BIGINT, qty BIGINT)
  WITH (topic='{orders}', partitions='2');

CREATE TABLE per_tier WITH (topic='{totals}') AS
SELECT u.tier, COUNT(*) AS orders, SUM(o.qty) AS qty
FROM orders o JOIN users u ON u.id = o.user_id
GROUP BY u.tier
EMIT CHANGES;
"""


def expected(orders: list[dict[str, int]]) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for o in orders:
        tier = USERS[o["user_id"]][1]
        row = out.setdefault(tier, {"tier": tier, "orders": 0, "qty": 0})
        row["orders"] = int(str(row["orders"])) + 1
        row["qty"] = int(str(row["qty"])) + o["qty"]
    return out


async def final_rows(broker: Broker, topic: str) -> dict[str, object]:
    return {r.key.decode(): codec.loads(r.value) for r in await read_all(broker.url, topic)}


async def test_join_keyed_group_by_reads_every_partition_and_stays_exact(
    broker: Broker, tmp_path: Path, workers: list[Worker]
) -> None:
    names = topics()
    await seed_tables(broker.url, names)
    pipeline = write_pipeline(tmp_path, names, PIPELINE)
    env = worker_env(broker.url, pipeline, names)
    orders = [{"order_id": i, "user_id": i % 3 + 1, "qty": i % 5 + 1} for i in range(300)]
    await ensure_topics(broker.url, [TopicSpec(names["orders"], 2)])
    await produce(broker.url, names["orders"], encoded(orders[:200]))

    worker = Worker(tmp_path / "w", env).start()
    workers.append(worker)
    await until(processed(worker, "per_tier", 200), "the first 200 orders", worker, timeout=90)
    stats = queries(worker)
    # No repartition stage: the query itself holds both source partitions.
    assert "per_tier-repartition" not in stats
    assert set(stats["per_tier"]["partitions"]) == {"0", "1"}
    assert "not repartitioned" in worker.tail(20_000)

    async def exact(items: list[dict[str, int]]) -> None:
        want = expected(items)
        got: dict[str, object] = {}
        for _ in range(100):  # the sink's newest row per tier, once every output is read back
            got = await final_rows(broker, names["totals"])
            if got == want:
                return
            await asyncio.sleep(0.2)
        assert got == want

    await exact(orders[:200])
    worker.stop()
    # A restart resumes from the local state: the last 100 orders are added, nothing twice.
    await produce(broker.url, names["orders"], encoded(orders[200:]))
    worker = Worker(tmp_path / "w", env).start()
    workers.append(worker)
    await until(processed(worker, "per_tier", 100), "the last 100 orders", worker, timeout=90)
    assert queries(worker)["per_tier"]["rebuilds"] == 0
    await exact(orders)
