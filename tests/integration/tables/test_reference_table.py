"""Reference tables against the real embedded broker."""

from __future__ import annotations

import copy
import random
from pathlib import Path

import pytest

from app.broker import Broker
from tables.protocol import Change
from tables.reference import ReferenceTable
from tables.registry import TableRegistry
from tables.spec import TableSpec
from tests.support.kafka import create_topic, final_state, produce, read_all, rows, unique

pytestmark = pytest.mark.broker


def user(i: int, v: int = 0) -> dict[str, object]:
    return {"id": i, "name": f"user-{i}", "tier": "gold" if i % 3 == 0 else "basic", "v": v}


async def started(table: ReferenceTable, timeout: float = 60) -> ReferenceTable:
    await table.start()
    assert await table.wait_until_ready(timeout), table.stats().as_dict()
    return table


async def test_load_update_delete_equals_final_topic_state(broker: Broker, tmp_path: Path) -> None:
    topic = await create_topic(broker.url, unique("users"), partitions=3)
    msgs = rows((str(i), user(i)) for i in range(10_000))
    msgs += rows((str(i), user(i, 1)) for i in random.Random(1).sample(range(10_000), 1_000))
    msgs += rows((str(i), None) for i in random.Random(2).sample(range(10_000), 500))
    await produce(broker.url, topic, msgs)
    expected = final_state(msgs)

    table = await started(ReferenceTable(TableSpec("users", topic), tmp_path, broker.url))
    try:
        assert len(table) == len(expected) == 9_500
        assert table.snapshot() == expected
        assert table.stats().records_read == len(msgs)
        assert table.stats().deletes == 500
        some = next(iter(expected))
        assert table.get(some) == expected[some]
        assert table.contains_key(some)
        assert not table.is_empty()
        assert table.get("no-such-key") is None
        assert sorted(table.keys()) == sorted(expected)
        gold = table.filter(lambda _k, v: v["tier"] == "gold")
        assert gold == {k: v for k, v in expected.items() if v["tier"] == "gold"}
        assert table.map_values(lambda v: v["name"]) == {k: v["name"] for k, v in expected.items()}
        # Copies are handles on the same state, like the seed's Clone.
        assert copy.copy(table).get(some) == table.get(some)
    finally:
        await table.stop()


async def test_ready_waits_for_the_end_of_large_batches(broker: Broker, tmp_path: Path) -> None:
    """Many records per batch: a reader of end_offsets() would call the table ready too early."""
    topic = await create_topic(broker.url, unique("batched"), partitions=1)
    msgs = rows((f"k{i}", {"i": i}) for i in range(30_000))
    await produce(broker.url, topic, msgs, linger_ms=200)
    table = ReferenceTable(TableSpec("batched", topic), tmp_path, broker.url, fetch_max_records=500)
    await started(table)
    try:
        # Ready means caught up: every row is there the moment readiness is reported.
        assert len(table) == 30_000
        assert table.stats().partitions[0].highwater == 30_000
    finally:
        await table.stop()


async def test_follows_live_changes_and_key_field(broker: Broker, tmp_path: Path) -> None:
    topic = await create_topic(broker.url, unique("byfield"), partitions=2)
    await produce(broker.url, topic, rows((f"x{i}", user(i)) for i in range(100)))
    table = await started(
        ReferenceTable(TableSpec("t", topic, key_field="id"), tmp_path, broker.url)
    )
    try:
        assert table.get(7) == user(7)
        assert table.get("7") == user(7)
        changes: list[Change] = []
        table.subscribe(changes.append)
        idx = table.index("tier")
        await produce(broker.url, topic, rows([("x7", user(7, 5)), ("x200", user(200))]))
        assert await table.wait_for_keys(101, timeout=20)
        assert table.get(7) == user(7, 5)
        assert "200" in idx.lookup(user(200)["tier"])
        ops = sorted((c.key, c.op.value, c.old_value) for c in changes)
        assert ops == [("200", "insert", None), ("7", "update", user(7))]
    finally:
        await table.stop()


async def test_malformed_records_go_to_dead_letters_and_loading_goes_on(
    broker: Broker, tmp_path: Path
) -> None:
    topic = await create_topic(broker.url, unique("dirty"), partitions=1)
    dlq = unique("dlq")
    good = rows((str(i), user(i)) for i in range(50))
    bad = [
        (b"b1", b"{not json"),
        (b"b2", b'{"name": "no id"}'),
        (
            b"b4",
            b'{"id": {"a": 1}}',
        ),  # keyed: Apache Kafka refuses key-less records in a compacted topic
        (b"b3", b"[1,2]"),
    ]
    await produce(broker.url, topic, good[:25] + bad + good[25:])
    registry = TableRegistry(
        [TableSpec("dirty", topic, key_field="id")],
        data_dir=tmp_path,
        bootstrap_servers=broker.url,
        dead_letter_topic=dlq,
    )
    await registry.start()
    try:
        table = registry["dirty"]
        assert await table.wait_until_ready(60)
        assert len(table) == 50
        assert table.stats().malformed == 4
        letters = await read_all(broker.url, dlq)
        assert sorted(m.value for m in letters) == sorted(v for _, v in bad)
        reasons = {m.value: dict(m.headers)["tablestream.reason"].decode() for m in letters}
        assert "not valid JSON" in reasons[b"{not json"]
        assert "no key field 'id'" in reasons[b'{"name": "no id"}']
        assert "not an object" in reasons[b"[1,2]"]
        assert "key field 'id' is" in reasons[b'{"id": {"a": 1}}']
        headers = dict(letters[0].headers)
        assert headers["tablestream.topic"].decode() == topic
        assert int(headers["tablestream.offset"]) == 25
    finally:
        await registry.stop()
