"""Group membership by broker capability (agents/membership.py), against the real brokers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from agents.membership import MemberFile, static_pays
from app.broker import Broker
from tables.topics import TopicSpec, ensure_topics
from tests.support.kafka import unique

pytestmark = [pytest.mark.broker]


async def test_auto_is_static_on_kafka_and_dynamic_on_tansu(
    broker: Broker, broker_kind: str
) -> None:
    assert await static_pays(broker.url) is (broker_kind == "kafka")


async def test_unreachable_broker_keeps_static() -> None:
    assert await static_pays("127.0.0.1:1", timeout=0.5) is True


async def test_the_previous_member_is_made_to_leave(broker: Broker, tmp_path: Path) -> None:
    topic, group = unique("members"), unique("members-group")
    await ensure_topics(broker.url, [TopicSpec(topic, 2)])
    member = MemberFile(tmp_path, group)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=broker.url,
        group_id=group,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        async with asyncio.timeout(60):
            while not consumer.assignment():
                await consumer.getmany(timeout_ms=200)
        member.remember(consumer)
        first = member.path.read_text()
        assert first
        assert first == consumer._coordinator.member_id
        # A restart of the same worker: its previous member leaves (here it is still alive, so it
        # notices — its id is unknown at the next heartbeat — and joins again under a new id).
        await member.leave_previous(broker.url, "test")
        assert not member.path.exists()
        async with asyncio.timeout(60):
            while consumer._coordinator.member_id in (first, "") or not consumer.assignment():
                await consumer.getmany(timeout_ms=200)
        assert {(tp.topic, tp.partition) for tp in consumer.assignment()} == {
            (topic, 0),
            (topic, 1),
        }
    finally:
        await consumer.stop()
