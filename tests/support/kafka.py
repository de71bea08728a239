"""Test helpers that talk to the real (embedded) broker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from core import codec
from tables.topics import TopicSpec, ensure_topics, topic_partitions


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def create_topic(servers: str, name: str, partitions: int = 3) -> str:
    await ensure_topics(
        servers, [TopicSpec(name, partitions, configs={"cleanup.policy": "compact"})]
    )
    return name


Message = tuple[bytes | None, bytes | None]


async def produce(
    servers: str,
    topic: str,
    messages: Iterable[Message],
    linger_ms: int = 50,
    max_batch_size: int = 1024 * 1024,
) -> int:
    """Send key/value pairs; a long linger packs many records per batch (as real producers do)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=servers, linger_ms=linger_ms, acks="all", max_batch_size=max_batch_size
    )
    await producer.start()
    try:
        futures = [await producer.send(topic, value=v, key=k) for k, v in messages]
        await asyncio.gather(*futures)
        return len(futures)
    finally:
        await producer.stop()


def rows(items: Iterable[tuple[str, Any]]) -> list[Message]:
    """JSON messages keyed by ``key``; a value of None is a tombstone."""
    return [(k.encode(), None if v is None else codec.dumps(v)) for k, v in items]


async def read_all(
    servers: str, topic: str, timeout: float = 10.0, isolation_level: str = "read_uncommitted"
) -> list[Any]:
    """Every record of ``topic`` from the beginning to its current end (by fetch high-watermark)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=servers, enable_auto_commit=False, isolation_level=isolation_level
    )
    await consumer.start()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        parts = await partitions_of(consumer, topic, timeout)
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[Any] = []
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for msgs in batch.values():
                out.extend(msgs)
            done = True
            for tp in tps:
                hw = consumer.highwater(tp)
                if hw is None or await consumer.position(tp) < hw:
                    done = False
            if done and not batch:
                break
        return out
    finally:
        await consumer.stop()


async def partitions_of(consumer: AIOKafkaConsumer, topic: str, timeout: float) -> set[int]:
    """The topic's partitions, waiting while they have no leader (just after a broker restart)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        parts = await topic_partitions(consumer, topic)
        if parts or loop.time() > deadline:
            return parts
        await asyncio.sleep(0.2)


def final_state(messages: Sequence[Message]) -> dict[str, Any]:
    """What a table keyed by message key must hold after ``messages``."""
    state: dict[str, Any] = {}
    for k, v in messages:
        assert k is not None
        if v is None:
            state.pop(k.decode(), None)
        else:
            state[k.decode()] = codec.loads(v)
    return state
