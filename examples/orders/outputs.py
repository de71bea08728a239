"""Reads the demo pipeline's output topics (no consumer group, from the start) and prints them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from app.webclient import try_get_json
from core import codec
from tables.topics import topic_partitions

SINKS = ("checked_orders", "gold_orders", "volume_by_symbol")


def fetch(url: str) -> tuple[int, Any]:
    """GET a JSON view: (status, body); status 0 when the server is not reachable."""
    return try_get_json(url, timeout=2)


async def wait_for(check: Callable[[], Awaitable[bool]], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.2)
    return False


def describe(topic: str, row: dict[str, Any]) -> str:
    if topic == "checked_orders":
        who = row.get("name") or f"unknown user {row.get('user_id')}"
        limit = row.get("max_price")
        return (
            f"order {row['order_id']:>5} {who:<10} {row['symbol']:<5} {row['qty']} x "
            f"{row['price']} (limit {limit}) -> {row['status']}"
        )
    if topic == "gold_orders":
        return f"order {row['order_id']:>5} gold user {row['user_id']} notional {row['notional']}"
    start = time.strftime("%H:%M:%S", time.gmtime(int(row.get("window_start") or 0) / 1000))
    return (
        f"{row.get('symbol'):<5} 10 s window from {start} UTC: "
        f"{row.get('orders')} orders, notional {row.get('notional')}"
    )


class Outputs:
    def __init__(self, broker: str) -> None:
        self.broker = broker
        self.consumer: AIOKafkaConsumer | None = None
        self.rows: dict[str, dict[Any, dict[str, Any]]] = {t: {} for t in SINKS}
        self.counts: dict[str, int] = {}

    async def _assign(self) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.broker, enable_auto_commit=False)
        await consumer.start()
        self.consumer = consumer
        parts: list[TopicPartition] = []
        for topic in SINKS:
            for _ in range(100):  # the worker creates its sink topics as it starts
                found = await topic_partitions(consumer, topic)
                if found:
                    parts += [TopicPartition(topic, p) for p in sorted(found)]
                    break
                await asyncio.sleep(0.2)
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        return consumer

    async def run(self, print_rows: bool) -> None:
        consumer = await self._assign()
        while True:
            batches = await consumer.getmany(timeout_ms=200)
            for tp, records in batches.items():
                for record in records:
                    if record.value is None:
                        continue
                    row = codec.loads_exact(record.value)  # prices keep their digits
                    self.counts[tp.topic] = self.counts.get(tp.topic, 0) + 1
                    self.rows[tp.topic][row.get("order_id")] = row
                    if print_rows:
                        print(f"[{tp.topic}] {describe(tp.topic, row)}", flush=True)

    async def wait_row(self, topic: str, order_id: int, timeout: float) -> dict[str, Any] | None:
        async def arrived() -> bool:
            return order_id in self.rows[topic]

        await wait_for(arrived, timeout)
        return self.rows[topic].get(order_id)

    async def stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()
