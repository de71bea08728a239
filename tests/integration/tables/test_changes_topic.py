"""``changes_topic``: a table's changes reach a topic as a retract stream, in order."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from app.broker import Broker
from core import codec
from tables.reference import ReferenceTable
from tables.spec import TableSpec
from tests.support.kafka import create_topic, produce, read_all, rows, unique

pytestmark = pytest.mark.broker


async def test_changes_topic_carries_the_retract_stream(broker: Broker, tmp_path: Path) -> None:
    topic = await create_topic(broker.url, unique("src"), partitions=1)
    changes_topic = unique("changes")
    spec = TableSpec("src", topic, key_field="id", changes_topic=changes_topic)
    await produce(broker.url, topic, rows([("1", {"id": 1, "v": "a"}), ("2", {"id": 2, "v": "b"})]))
    table = ReferenceTable(spec, tmp_path, broker.url)
    await table.start()
    try:
        assert await table.wait_until_ready(30)
        updates: list[tuple[str, Any]] = [("1", {"id": 1, "v": "a2"}), ("2", None), ("3", None)]
        await produce(broker.url, topic, rows(updates))
        for _ in range(100):
            if table.get(2) is None and table.get(1) == {"id": 1, "v": "a2"}:
                break
            await asyncio.sleep(0.05)
    finally:
        await table.stop()  # flushes what is pending
    messages = await read_all(broker.url, changes_topic)
    got = [(m.key.decode(), codec.loads(m.value)) for m in messages]
    summary = [(k, v["op"], v["change"], v["row"], v["version"]) for k, v in got]
    assert summary == [
        ("1", "+", "insert", {"id": 1, "v": "a"}, 1),
        ("2", "+", "insert", {"id": 2, "v": "b"}, 2),
        ("1", "-", "update", {"id": 1, "v": "a"}, 3),
        ("1", "+", "update", {"id": 1, "v": "a2"}, 3),
        ("2", "-", "delete", {"id": 2, "v": "b"}, 4),
    ]
    assert got[0][1]["source"] == {"topic": topic, "partition": 0, "offset": 0}
    assert all(v["table"] == "src" for _, v in got)
