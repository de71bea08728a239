"""Versioned reference tables on the real broker: as-of reads over a hand-built timeline (inserts,
updates, deletes, out-of-order timestamps), before and after a restart; the change stream; a
rebuild drops the history with the rows; a plain store is rebuilt when it becomes versioned.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from app.broker import Broker
from core import codec
from tables.protocol import Op
from tables.reference import ReferenceTable
from tables.spec import TableSpec
from tests.support.kafka import create_topic, unique

pytestmark = pytest.mark.broker

Event = tuple[str, Any, int]  # key, value (None: tombstone), event timestamp (ms)

TIMELINE: list[Event] = [
    ("a", {"p": 1}, 1000),
    ("b", {"p": 10}, 1000),
    ("c", {"p": 100}, 2000),
    ("a", {"p": 2}, 2000),
    ("a", None, 3000),
    ("c", None, 2500),
    ("a", {"p": 4}, 4000),
    ("a", {"p": 1.5}, 1500),  # late: belongs between 1000 and 2000
    ("b", None, 500),  # late delete, before b existed
    ("b", {"p": 11}, 5000),
]
TAIL: list[Event] = [
    ("a", {"p": 3.5}, 3500),  # late again: fills the hole the delete left
    ("c", {"p": 101}, 6000),
    ("b", None, 5500),
    ("d", {"p": 1000}, 100),
]
PROBES = [
    0,
    499,
    500,
    999,
    1000,
    1499,
    1500,
    1999,
    2000,
    2499,
    2500,
    2999,
    3000,
    3499,
    3500,
    3999,
    4000,
    4999,
    5000,
    5499,
    5500,
    5999,
    6000,
    10**12,
]


def model_as_of(events: list[Event], key: str, ts: int) -> Any:
    best: tuple[int, int] | None = None
    value = None
    for arrival, (k, v, t) in enumerate(events):
        if k == key and t <= ts and (best is None or (t, arrival) > best):
            best, value = (t, arrival), v
    return value


async def produce_timed(servers: str, topic: str, events: list[Event]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all")
    await producer.start()
    try:
        for key, value, ts in events:  # one by one: arrival order is the timeline's order
            raw = None if value is None else codec.dumps(value)
            await (await producer.send(topic, raw, key=key.encode(), timestamp_ms=ts))
    finally:
        await producer.stop()


async def load(spec: TableSpec, data_dir: Path, servers: str) -> ReferenceTable:
    table = ReferenceTable(spec, data_dir, servers)
    await table.start()
    assert await table.wait_until_ready(60), table.stats().as_dict()
    return table


def check_against_model(table: ReferenceTable, events: list[Event]) -> None:
    for key in ("a", "b", "c", "d"):
        assert table.get(key) == model_as_of(events, key, 10**13), key
        got = {ts: table.get_as_of(key, ts) for ts in PROBES}
        assert got == {ts: model_as_of(events, key, ts) for ts in PROBES}, key


async def test_as_of_timeline_survives_restart(broker: Broker, tmp_path: Path) -> None:
    topic = await create_topic(broker.url, unique("prices"), partitions=2)
    spec = TableSpec("prices", topic, versions=20)
    await produce_timed(broker.url, topic, TIMELINE)
    table = await load(spec, tmp_path, broker.url)
    try:
        check_against_model(table, TIMELINE)
        assert [v.timestamp for v in table.history("a")] == [1000, 1500, 2000, 3000, 4000]
        assert table.stream_time == 5000
        assert table.version == len(TIMELINE)  # every record became a version

        # The async change stream sees live changes of the present, not of the past.
        async with table.changes(maxsize=100) as stream:
            await produce_timed(broker.url, topic, [("a", {"p": 0.5}, 700), ("e", {"p": 7}, 7000)])
            change = await asyncio.wait_for(anext(stream), 10)
        assert (change.key, change.op, change.value, change.timestamp) == (
            "e",
            Op.INSERT,
            {"p": 7},
            7000,
        )
        assert change.topic == topic
        assert change.offset >= 0
        assert change.version == len(TIMELINE) + 2
        assert table.get_as_of("a", 800) == {"p": 0.5}
    finally:
        await table.stop()
    events = [*TIMELINE, ("a", {"p": 0.5}, 700), ("e", {"p": 7}, 7000)]

    await produce_timed(broker.url, topic, TAIL)
    events += TAIL
    table = await load(spec, tmp_path, broker.url)
    try:
        assert table.stats().records_read == len(TAIL)  # warm restart: history came from disk
        check_against_model(table, events)
        assert table.version == len(events)
        since = len(events) - len(TAIL)
        changes = table.get_changes_since(since)
        # Versions follow the order the table applied records (partitions interleave).
        assert sorted((c.key, c.timestamp) for c in changes) == sorted((k, t) for k, _, t in TAIL)
        assert sorted(c.version for c in changes) == list(range(since + 1, len(events) + 1))
    finally:
        await table.stop()


async def test_rebuild_drops_history_and_plain_store_becomes_versioned(
    broker: Broker, other_broker: Broker, tmp_path: Path
) -> None:
    name = unique("hist")
    await create_topic(broker.url, name, partitions=1)
    await produce_timed(broker.url, name, TIMELINE)

    # A plain table's store cannot answer for the past: asked to keep history, it rebuilds.
    plain = await load(TableSpec("hist", name), tmp_path, broker.url)
    await plain.stop()
    spec = TableSpec("hist", name, versions=20)
    table = await load(spec, tmp_path, broker.url)
    try:
        assert table.stats().records_read == len(TIMELINE)
        check_against_model(table, TIMELINE)
    finally:
        await table.stop()

    # Same topic name on another cluster: local state is rebuilt, the old history with it.
    await create_topic(other_broker.url, name, partitions=1)
    other: list[Event] = [("a", {"p": 9}, 9000), ("z", {"p": 1}, 9000)] * 3
    await produce_timed(other_broker.url, name, other)
    table = await load(spec, tmp_path, other_broker.url)
    try:
        assert [v.timestamp for v in table.history("a")] == [9000]
        assert table.history("b") == []
        assert table.get_as_of("a", 2000) is None
        assert table.version == len(other)
    finally:
        await table.stop()
