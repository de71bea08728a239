"""Records removed under a reader (delete-records, as retention does): rebuild, never a crash
or a stall. The log start offset moves past what local state reflects."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.broker import Broker
from core import codec
from tables.spec import TableSpec
from tables.topics import TopicSpec, ensure_topics
from tests.integration.agents.support import (
    encoded,
    gold_orders,
    processed,
    queries,
    seeded_pipeline,
    until,
)
from tests.integration.kafka.support import delete_records, load
from tests.support.kafka import final_state, produce, read_all, rows, unique
from tests.support.worker import Worker

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.kafka_only]


async def test_table_state_older_than_the_log_start_is_rebuilt(
    broker: Broker, tmp_path: Path
) -> None:
    topic = unique("retained")
    await ensure_topics(broker.url, [TopicSpec(topic, 1, configs={"cleanup.policy": "delete"})])
    first = rows((str(i), {"id": i, "v": 1}) for i in range(100))
    await produce(broker.url, topic, first)
    spec = TableSpec("retained", topic)
    table = await load(spec, tmp_path, broker.url)
    assert table.stats().partitions[0].position == 100
    await table.stop()

    later = rows((str(i), {"id": i, "v": 2}) for i in range(50, 200))
    await produce(broker.url, topic, later)
    await delete_records(broker.url, topic, before=150)  # offsets 0..149 gone: 100 is too old
    left = (first + later)[150:]
    assert [r.offset for r in await read_all(broker.url, topic)][:1] == [150]

    table = await load(spec, tmp_path, broker.url)
    try:
        assert table.snapshot() == final_state(left)
        assert table.stats().records_read == len(left)
    finally:
        await table.stop()


async def test_a_query_whose_source_was_truncated_goes_on(
    broker: Broker, tmp_path: Path, workers: list[Worker]
) -> None:
    names, env = await seeded_pipeline(broker.url, tmp_path)
    worker = Worker(tmp_path / "w", env).start()
    workers.append(worker)
    await produce(broker.url, names["orders"], encoded(gold_orders(0, 200)))
    await until(processed(worker, "totals", 200), "the first orders", worker)
    worker.stop()

    # While the worker is away, more orders arrive and are removed by "retention" before it
    # reads them: its committed offsets and local state point below the new log start.
    await produce(broker.url, names["orders"], encoded(gold_orders(200, 200)))
    ends: dict[int, int] = {}
    for r in await read_all(broker.url, names["orders"]):
        ends[r.partition] = max(ends.get(r.partition, 0), r.offset + 1)
    for p, end in ends.items():
        await delete_records(broker.url, names["orders"], before=end, partition=p)
    await produce(broker.url, names["orders"], encoded(gold_orders(400, 100)))

    worker = Worker(tmp_path / "w", env).start()
    workers.append(worker)

    def after_gap() -> bool:
        got = {
            codec.loads(r.value)["order_id"]
            for r in asyncio.run(read_all(broker.url, names["checked"]))
        }
        return set(range(400, 500)) <= got

    await until(after_gap, "the orders after the gap through `checked`", worker, 90)
    await until(processed(worker, "totals", 100), "`totals` past the gap", worker, 90)
    q = queries(worker)
    assert q["totals"]["state"] == q["checked"]["state"] == "running"
