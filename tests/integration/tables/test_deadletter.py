"""Dead letters in one place (tables.deadletter): a table loader's and a query's dead letters have
one format, and read_dead_letters reads the newest back, filtered, against the real broker."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from agents.sink import Output
from app.broker import EmbeddedBroker
from tables.apply import Malformed
from tables.deadletter import (
    H_REASON,
    DeadLetterWriter,
    dead_letter_topic_spec,
    read_dead_letters,
    source_of_query,
)
from tables.registry import TableRegistry
from tables.spec import TableSpec
from tables.topics import ensure_topics
from tests.support.kafka import create_topic, unique

pytestmark = [pytest.mark.broker]


async def test_a_loaders_dead_letters_keep_the_original_headers(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    topic = await create_topic(broker.url, unique("dirty"), partitions=1)
    dlq = unique("dlq")
    producer = AIOKafkaProducer(bootstrap_servers=broker.url, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b'{"id": 1}', key=b"1")
        await producer.send_and_wait(
            topic, b"{oops", key=b"2", headers=[("trace", b"\x00\xff"), ("app", b"shop")]
        )
    finally:
        await producer.stop()
    registry = TableRegistry(
        [TableSpec("dirty", topic, key_field="id")],
        data_dir=tmp_path,
        bootstrap_servers=broker.url,
        dead_letter_topic=dlq,
    )
    await registry.start()  # creates the dead-letter topic
    try:
        assert await registry["dirty"].wait_until_ready(60)
        (letter,) = await read_dead_letters(broker.url, dlq, 10)
    finally:
        await registry.stop()
    assert letter.source == "table:dirty"
    assert (letter.kind, letter.name) == ("table", "dirty")
    assert letter.reason.startswith("value is not valid JSON")
    assert (letter.topic, letter.partition, letter.offset) == (topic, 0, 1)
    assert (letter.key, letter.value) == (b"2", b"{oops")
    assert letter.headers == (("trace", b"\x00\xff"), ("app", b"shop"))
    assert letter.timestamp > 0


async def test_read_back_newest_first_with_limit_and_filters(broker: EmbeddedBroker) -> None:
    dlq = unique("dlq")
    await ensure_topics(broker.url, [dead_letter_topic_spec(dlq, 2)])
    producer = AIOKafkaProducer(bootstrap_servers=broker.url, acks="all")
    await producer.start()
    try:
        # The queries' way: appended to the batch output (agents.sink.Output), then flushed.
        out = Output(producer)
        await out.prepare([dlq])
        for i in range(30):
            reason = "late" if i % 3 == 0 else f"DivisionByZeroError: division by zero ({i})"
            item = Malformed("orders", i % 2, 100 + i, 1_700_000_000_000 + i, b"k", b"v", reason)
            out.dead_letter(dlq, item, source_of_query("checked" if i < 20 else "gold"))
            for future in await out.flush():  # one batch each: the dead letters' order is known
                await future
        # The loaders' way, a binary key and a tombstone (a later timestamp: newest of all).
        await asyncio.sleep(0.01)
        writer = DeadLetterWriter(producer, dlq)
        await writer.send([Malformed("users", 0, 7, 5, b"\x00\x01", None, "no key")], "table:users")
    finally:
        await producer.stop()

    newest = await read_dead_letters(broker.url, dlq, 5)
    assert [d.offset for d in newest] == [7, 129, 128, 127, 126]
    assert (newest[0].key, newest[0].value, newest[0].source) == (b"\x00\x01", None, "table:users")
    assert newest[1].reason == "DivisionByZeroError: division by zero (29)"

    late = await read_dead_letters(broker.url, dlq, 100, reason="late")
    assert [d.offset for d in late] == [100 + i for i in range(27, -1, -3)]
    assert {d.reason for d in late} == {"late"}

    gold = await read_dead_letters(broker.url, dlq, 3, source="query:gold")
    assert [d.offset for d in gold] == [129, 128, 127]
    assert all(d.headers == () for d in gold)

    # A filter looks at the newest `scan` records of each partition only (the queries' 30 share
    # a key, so a partition): of offsets 126-129 only 127 (i = 27) is late.
    few = await read_dead_letters(broker.url, dlq, 3, reason="late", scan=4)
    assert [d.offset for d in few] == [127]

    assert await read_dead_letters(broker.url, unique("absent"), 10) == []


def test_the_header_format_is_what_the_readme_documents() -> None:
    from tables.deadletter import OUR_HEADERS, dead_letter_record

    item = Malformed("t", 2, 9, 11, b"k", b"v", "why", (("h", b"1"),))
    key, value, headers = dead_letter_record(item, "query:q")
    assert (key, value) == (b"k", b"v")
    assert headers == [
        ("h", b"1"),
        (H_REASON, b"why"),
        ("tablestream.source", b"query:q"),
        ("tablestream.topic", b"t"),
        ("tablestream.partition", b"2"),
        ("tablestream.offset", b"9"),
        ("tablestream.timestamp", b"11"),
    ]
    assert tuple(k for k, _ in headers[1:]) == OUR_HEADERS
