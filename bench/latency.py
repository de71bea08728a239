"""End-to-end latency at a fixed input rate, and where it goes (used by :mod:`bench.pipeline` and
:mod:`bench.pipeline_eos`).

Orders carry their send time (``sent``, µs since the epoch); a reader of the sink takes the time
it reads each output. On topics with ``message.timestamp.type=LogAppendTime`` the broker stamps
every record with the time it appended it, so each latency splits in three on the broker's clock
(millisecond resolution) without touching the worker:

- ``to source``: the producer's send → the order appended to the source topic (the producer's
  linger and the produce round trip);
- ``worker``: the order appended → its output appended to the sink (the worker's fetch, its
  processing and its produce);
- ``to reader``: the output appended → the reader's fetch returned it.

For the broker hop alone (source = sink) the middle part is zero. Nothing here changes what is
measured: the same producer and reader (linger 1 ms, fetch wait 5 ms) serve both runs.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.orders import encode_order, order
from tables.topics import topic_partitions

#: Topic settings under which :func:`latency` can split each latency into its stages.
LOG_APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}
#: Kafka's code for LogAppendTime in a record's timestamp type.
_LOG_APPEND = 1
STAGES = ("to source", "worker", "to reader")
FIRST_ORDER_ID = 10**9


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


@dataclass(slots=True)
class Latencies:
    """Per output read (ms): the whole latency and, when the broker stamped append times, its
    stages (same order: ``stages[name][i]`` belongs to ``total[i]``)."""

    total: list[float] = field(default_factory=list)
    stages: dict[str, list[float]] = field(default_factory=dict)

    def warm(self, skip: float = 0.1) -> Latencies:
        """Without the first ``skip`` share of the outputs (connections and caches warming)."""
        n = int(len(self.total) * skip)
        return Latencies(self.total[n:], {k: v[n:] for k, v in self.stages.items()})

    def summary(self) -> str:
        t = self.total
        return f"p50 {pct(t, 0.5):.1f} ms, p99 {pct(t, 0.99):.1f} ms, max {max(t):.1f} ms"

    def breakdown(self) -> str:
        """Each stage's p50 / p99, and the mean of each over the outputs at or above the p99
        (what the tail is made of); empty without append times."""
        if not self.stages or not self.total:
            return ""
        p99 = pct(self.total, 0.99)
        tail = [i for i, x in enumerate(self.total) if x >= p99]
        parts = [
            f"{name} p50 {pct(v, 0.5):.1f} / p99 {pct(v, 0.99):.1f}"
            for name, v in self.stages.items()
        ]
        means = [
            f"{name} {sum(v[i] for i in tail) / len(tail):.1f}" for name, v in self.stages.items()
        ]
        return (
            f"stages (broker append times, ms resolution): {'; '.join(parts)} ms;"
            f" outputs >= p99 ({len(tail)}): mean {', '.join(means)} ms"
        )


async def latency(
    servers: str,
    rate: int,
    seconds: float,
    users: int,
    source: str = "bench-orders",
    sink: str = "bench-checked",
    isolation_level: str = "read_uncommitted",
) -> Latencies:
    """Latencies of ``sink`` records for orders sent to ``source`` at ``rate``/s.

    With ``source == sink`` it is the broker's own produce-to-consume floor. Outputs of an
    exactly-once worker count when a ``read_committed`` reader sees them (its transaction
    committed)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=servers,
        enable_auto_commit=False,
        fetch_max_wait_ms=5,
        isolation_level=isolation_level,
    )
    producer = AIOKafkaProducer(bootstrap_servers=servers, linger_ms=1, acks="all")
    await consumer.start()
    await producer.start()
    rng = random.Random(3)
    # Per output read: (order id, sent µs, read µs, appended to the sink ms or None).
    seen: list[tuple[int, int, int, int | None]] = []
    sends: list[asyncio.Future[Any]] = []
    try:
        tps = [TopicPartition(sink, p) for p in await topic_partitions(consumer, sink)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        total = int(rate * seconds)
        done = asyncio.Event()

        async def read() -> None:
            while len(seen) < total:
                batch = await consumer.getmany(timeout_ms=100)
                now = time.time_ns() // 1000
                for msgs in batch.values():
                    for m in msgs:
                        value = orjson.loads(m.value)
                        if value["sent"]:  # outputs of the seeded orders carry 0
                            appended = m.timestamp if m.timestamp_type == _LOG_APPEND else None
                            seen.append((value["order_id"], value["sent"], now, appended))
            done.set()

        reader = asyncio.create_task(read())
        tick = 0.005
        per_tick = max(1, int(rate * tick))
        start = time.perf_counter()
        sent = 0
        i = FIRST_ORDER_ID
        while sent < total:
            target = start + (sent // per_tick) * tick
            delay = target - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            for _ in range(per_tick):
                o = order(i, users, rng, sent=time.time_ns() // 1000)
                sends.append(await producer.send(source, encode_order(o), key=str(i).encode()))
                i += 1
                sent += 1
        await asyncio.wait_for(done.wait(), 60)
        reader.cancel()
        # The source's append times, from the produce responses (LogAppendTime: the broker's).
        metadata = await asyncio.gather(*sends)
    finally:
        await producer.stop()
        await consumer.stop()
    return _latencies(
        seen, [m.timestamp if m.timestamp_type == _LOG_APPEND else None for m in metadata]
    )


def _latencies(
    seen: list[tuple[int, int, int, int | None]], source_appended: list[int | None]
) -> Latencies:
    out = Latencies()
    split = all(s[3] is not None for s in seen) and all(a is not None for a in source_appended)
    stages: list[list[float]] = [[], [], []]
    for order_id, sent, read_at, sink_appended in seen:
        out.total.append((read_at - sent) / 1000)
        if split:
            assert sink_appended is not None
            appended = source_appended[order_id - FIRST_ORDER_ID]
            assert appended is not None
            stages[0].append(appended - sent / 1000)
            stages[1].append(float(sink_appended - appended))
            stages[2].append(read_at / 1000 - sink_appended)
    if split:
        out.stages = dict(zip(STAGES, stages, strict=True))
    return out
