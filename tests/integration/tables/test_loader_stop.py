"""A table stopped while its broker is away: the loader's consumer fails to stop (aiokafka's
fetcher, backing off after a failed fetch, is cancelled and its stop raises), and still the
table's RocksDB store is closed and nothing of it keeps running — the next table on the same
directory opens it and resumes from its stored offsets once the broker is back (the store left
open failed that table with "lock hold by current process"). On an Apache Kafka broker of the
test's own, stopped and restarted on the same log directories."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from app.broker import Broker
from tables.reference import ReferenceTable
from tables.spec import TableSpec
from tests.support.kafka import create_topic, final_state, produce, rows, unique

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.kafka_only]

#: What aiokafka's fetcher logs before it backs off (``asyncio.sleep``) from a failed fetch.
FAILED_FETCH = "Failed fetch messages from"


class FetchFailed(logging.Handler):
    """Sets ``event`` when the fetcher logs a failed fetch (it is then backing off)."""

    def __init__(self, event: asyncio.Event) -> None:
        super().__init__(logging.ERROR)
        self.event = event

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith(FAILED_FETCH):
            self.event.set()


async def load(spec: TableSpec, data_dir: Path, servers: str) -> ReferenceTable:
    table = ReferenceTable(spec, data_dir, servers)
    await table.start()
    assert await table.wait_until_ready(60), table.stats().as_dict()
    return table


async def no_tasks_but(before: set[asyncio.Task[object]], timeout: float = 10.0) -> None:
    """Every task started since ``before`` ended (the loader's, the consumer's fetcher and
    metadata tasks: cancelled ones end on the next turns of the loop)."""
    deadline = time.monotonic() + timeout
    while True:
        left = [t for t in asyncio.all_tasks() if t not in before and not t.done()]
        if not left:
            return
        assert time.monotonic() < deadline, f"still running after the stop: {left}"
        await asyncio.sleep(0.05)


async def test_a_table_stopped_while_its_broker_is_away_closes_its_store(
    fresh_broker: Broker, tmp_path: Path
) -> None:
    broker = fresh_broker
    topic = await create_topic(broker.url, unique("stopaway"), partitions=2)
    msgs = rows((str(i), {"i": i}) for i in range(2_000))
    await produce(broker.url, topic, msgs)
    spec = TableSpec("stopaway", topic)
    before = set(asyncio.all_tasks())
    table = await load(spec, tmp_path, broker.url)
    assert table.snapshot() == final_state(msgs)

    failed = asyncio.Event()
    handler = FetchFailed(failed)
    fetcher = logging.getLogger("aiokafka.consumer.fetcher")
    fetcher.addHandler(handler)
    try:
        await asyncio.to_thread(broker.stop)
        await asyncio.wait_for(failed.wait(), 30)
        # Stopped while the fetcher backs off from that failed fetch: its stop is cancelled.
        await asyncio.wait_for(table.stop(), 30)
    finally:
        fetcher.removeHandler(handler)
    await no_tasks_but(before)

    await asyncio.to_thread(broker.start)  # same ports, same log directories
    again = await load(spec, tmp_path, broker.url)  # the same store: opened, not locked
    try:
        assert again.snapshot() == final_state(msgs)
        assert again.stats().records_read == 0  # resumed from the offsets stored with the rows
    finally:
        await again.stop()
