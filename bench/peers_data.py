"""The data of ``bench.peers`` and its checker: one seeded data set (users, orders keyed by user,
a sentinel per user) with every expected output computed while seeding, and a reader of a sink
topic that compares what a system wrote with them, exactly. ``bench.peers`` runs the systems."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.pipeline import produce
from tables.topics import TopicSpec, ensure_topics, topic_partitions

ORDERS, USERS = "peers-orders", "peers-users"
T0 = 1_700_000_000_000  # epoch ms, a multiple of the window
WINDOW_MS = 10_000
STEP_MS = 0.25  # event time per order: 200k orders span 50 s = 5 windows


@dataclass
class Data:
    orders: int  # input records, sentinels included
    sentinel_ts: int
    enrich: dict[int, tuple[int, str, int]] = field(default_factory=dict)
    window: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)


async def seed(servers: str, n_orders: int, n_users: int, partitions: int) -> Data:
    """Users, orders and one sentinel per user 10 minutes after the last order (it closes every
    window of every system that closes windows by event time; its own window is not checked).
    Orders are keyed by user: a user's records, sentinel last, stay in order in one partition
    (Quix Streams closes a window per key, on the first newer record of that key)."""
    rng = random.Random(11)
    await ensure_topics(
        servers,
        [
            TopicSpec(USERS, 1, configs={"cleanup.policy": "compact"}),
            # Quix Streams derives its repartition topic from retention.ms (Tansu omits it).
            TopicSpec(ORDERS, partitions, configs={"retention.ms": "-1"}),
        ],
    )
    users = []
    names: dict[int, tuple[str, str]] = {}
    for i in range(n_users):
        tier = rng.choice(["basic", "gold"])
        names[i] = (f"user-{i}", tier)
        row = {"id": i, "name": f"user-{i}", "tier": tier}
        users.append((str(i).encode(), orjson.dumps(row)))
    await produce(servers, USERS, users)
    sentinel_ts = T0 + int(n_orders * STEP_MS) + 600_000
    sentinel_ts -= sentinel_ts % WINDOW_MS
    data = Data(n_orders + n_users, sentinel_ts)
    orders = []
    for i in range(n_orders):
        uid, cents, ts = rng.randrange(n_users), rng.randrange(100, 100_000), T0 + int(i * STEP_MS)
        amount = f"{cents // 100}.{cents % 100:02d}"
        value = f'{{"order_id":{i},"user_id":{uid},"amount":{amount},"ts":{ts}}}'
        orders.append((str(uid).encode(), value.encode()))
        name, tier = names[uid]
        if tier == "gold" and cents > 50_000:
            data.enrich[i] = (uid, name, cents)
        start = ts - ts % WINDOW_MS
        n, total = data.window.get((uid, start), (0, 0))
        data.window[(uid, start)] = (n + 1, total + cents)
    for uid in range(n_users):
        value = f'{{"order_id":{n_orders + uid},"user_id":{uid},"amount":0.00,"ts":{sentinel_ts}}}'
        orders.append((str(uid).encode(), value.encode()))
    await produce(servers, ORDERS, orders)
    return data


def cents(x: Any) -> int:
    return int(Decimal(str(x)) * 100)


class Checker:
    """Reads a sink topic live and compares it with the expected outputs, exactly."""

    def __init__(self, job: str, data: Data) -> None:
        self.job = job
        self.data = data
        self.expected: dict[Any, Any] = data.enrich if job == "enrich" else data.window
        self.seen: dict[Any, Any] = {}
        self.matches = 0
        self.unexpected: list[Any] = []
        self.done_at: float | None = None
        self.outputs = 0

    def _entry(self, row: dict[str, Any]) -> tuple[Any, Any] | None:
        if self.job == "enrich":
            return row["order_id"], (row["user_id"], row["name"], cents(row["amount"]))
        start = int(row["window_start"])
        if start >= self.data.sentinel_ts:
            return None
        return (int(row["user_id"]), start), (int(row["n"]), cents(row["total"]))

    def feed(self, value: bytes) -> None:
        self.outputs += 1
        entry = self._entry(orjson.loads(value))
        if entry is None:
            return
        key, got = entry
        want = self.expected.get(key)
        if want is None:
            self.unexpected.append((key, got))
            return
        before = self.seen.get(key) == want
        self.seen[key] = got
        self.matches += (got == want) - before
        if self.matches == len(self.expected) and self.done_at is None:
            self.done_at = time.time()

    def verdict(self) -> str:
        if self.unexpected:
            return f"WRONG: {len(self.unexpected)} unexpected outputs, e.g. {self.unexpected[:3]}"
        if self.done_at is None:
            wrong = [
                (k, v, self.expected[k]) for k, v in self.seen.items() if v != self.expected[k]
            ]
            missing = len(self.expected) - len(self.seen)
            return f"WRONG: {missing} missing, {len(wrong)} differ, e.g. {wrong[:3]}"
        return f"exact ({len(self.expected):,} expected outputs)"

    async def run(self, servers: str, topic: str, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=servers, enable_auto_commit=False, fetch_max_wait_ms=20
        )
        await consumer.start()
        try:
            parts: set[int] | list[int] = []
            while not parts and not stop.is_set():
                try:
                    parts = await topic_partitions(consumer, topic)
                except Exception:
                    parts = []
                if not parts:
                    await asyncio.sleep(0.2)
            tps = [TopicPartition(topic, p) for p in parts]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            while not stop.is_set() and self.done_at is None:
                batch = await consumer.getmany(timeout_ms=100, max_records=20_000)
                for msgs in batch.values():
                    for m in msgs:
                        self.feed(m.value)
        finally:
            await consumer.stop()
