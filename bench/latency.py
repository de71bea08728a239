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
measured: the same producer and reader serve both runs.

The load generator is kept light, since it shares 2 cores with the broker and the worker and
its CPU delays everyone: the producer sends ``rate * tick`` orders every ``tick`` (1 ms, a steady
stream; 5 ms bursts of 50 before, ``--tick-ms``) as one record batch per partition
(``send_batch``, partitioned as Kafka's clients do: ``send()`` per record cost the process about
a third of a core at 10k/s), with ``linger_ms`` 0 (aiokafka's default; 1 before). The reader runs
in a process of its own (``python -m bench.latency read ...``), as a consumer of the pipeline's
output would, and fetches with the worker's raw path (:func:`core.fetch.getmany_raw`): in the
producer's process its event loop also ran the producer, and an output that arrived meanwhile
waited (``reader_process=False`` keeps that for comparison).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import murmur2

from bench.orders import encode_order, order
from core.fetch import getmany_raw, supported
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


#: One output read: (order id, sent µs, read µs, appended to the sink ms or None).
Seen = tuple[int, int, int, int | None]


async def latency(
    servers: str,
    rate: int,
    seconds: float,
    users: int,
    source: str = "bench-orders",
    sink: str = "bench-checked",
    isolation_level: str = "read_uncommitted",
    *,
    reader_process: bool = True,
    tick: float = 0.001,
    linger_ms: int = 0,
) -> Latencies:
    """Latencies of ``sink`` records for orders sent to ``source`` at ``rate``/s.

    With ``source == sink`` it is the broker's own produce-to-consume floor. Outputs of an
    exactly-once worker count when a ``read_committed`` reader sees them (its transaction
    committed)."""
    total = int(rate * seconds)
    producer = AIOKafkaProducer(bootstrap_servers=servers, linger_ms=linger_ms, acks="all")
    if reader_process:
        reader: Reader = ProcessReader(servers, sink, total, isolation_level)
    else:
        reader = LoopReader(servers, sink, total, isolation_level)
    rng = random.Random(3)
    # Per record batch sent: its ack, and the order ids in it (in offset order).
    sends: list[tuple[asyncio.Future[Any], list[int]]] = []
    try:
        await reader.start()
        await producer.start()
        parts = sorted(await producer.partitions_for(source))
        # Every order built beforehand (key, partition, its JSON up to the send time): at send
        # time only the clock is read and appended.
        planned = []
        for n in range(total):
            key = str(FIRST_ORDER_ID + n).encode()
            value = encode_order(order(FIRST_ORDER_ID + n, users, rng, sent=1))
            assert value.endswith(b'"sent":1}')
            planned.append((key, parts[(murmur2(key) & 0x7FFFFFFF) % len(parts)], value[:-2]))
        per_tick = max(1, int(rate * tick))
        start = time.perf_counter()
        sent = 0
        while sent < total:
            target = start + (sent // per_tick) * tick
            delay = target - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            # One record batch per partition and tick, as a batching producer (linger) would
            # build it: ``send()`` per record cost the bench's process a third of a core.
            batches: dict[int, tuple[Any, list[int]]] = {}
            for n in range(sent, min(sent + per_tick, total)):
                key, p, head = planned[n]
                if p not in batches:
                    batches[p] = (producer.create_batch(), [])
                batch, ids = batches[p]
                value = b"%s%d}" % (head, time.time_ns() // 1000)
                if batch.append(key=key, value=value, timestamp=None) is None:
                    raise RuntimeError("a tick's orders do not fit one record batch")
                ids.append(FIRST_ORDER_ID + n)
            sent = min(sent + per_tick, total)
            for p, (batch, ids) in batches.items():
                sends.append((await producer.send_batch(batch, source, partition=p), ids))
        seen = await asyncio.wait_for(reader.result(), 60)
        # The source's append times, from the produce responses (LogAppendTime: the broker's,
        # one per record batch).
        appended: list[int | None] = [None] * total
        for fut, ids in sends:
            md = await fut
            for oid in ids:
                appended[oid - FIRST_ORDER_ID] = (
                    md.timestamp if md.timestamp_type == _LOG_APPEND else None
                )
    finally:
        await producer.stop()
        await reader.close()
    return _latencies(seen, appended)


class Reader(Protocol):
    async def start(self) -> None:
        """Positioned at the end of the sink: what is sent from now on is read."""

    async def result(self) -> list[Seen]:
        """Every output read, once ``total`` were."""

    async def close(self) -> None: ...


async def read_outputs(
    servers: str, sink: str, total: int, isolation_level: str, ready: Callable[[], None]
) -> list[Seen]:
    """Reads ``total`` outputs of the bench's orders from the end of ``sink``."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=servers,
        enable_auto_commit=False,
        fetch_max_wait_ms=5,
        isolation_level=isolation_level,
    )
    await consumer.start()
    seen: list[Seen] = []
    try:
        tps = [TopicPartition(sink, p) for p in await topic_partitions(consumer, sink)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        ready()
        # The worker's own fetch path (C records, no ConsumerRecord per record): the reader
        # shares 2 cores with the broker and the worker, its CPU is everyone's latency.
        raw = supported(consumer)
        while len(seen) < total:
            batch = (
                await getmany_raw(consumer, 100, 100_000)
                if raw
                else await consumer.getmany(timeout_ms=100)
            )
            now = time.time_ns() // 1000
            for msgs in batch.values():
                for m in msgs:
                    value = orjson.loads(m.value)
                    if value["sent"]:  # outputs of the seeded orders carry 0
                        appended = m.timestamp if m.timestamp_type == _LOG_APPEND else None
                        seen.append((value["order_id"], value["sent"], now, appended))
    finally:
        await consumer.stop()
    return seen


class LoopReader:
    """The reader as a task of the producer's own event loop."""

    def __init__(self, servers: str, sink: str, total: int, isolation_level: str) -> None:
        self.args = (servers, sink, total, isolation_level)
        self._task: asyncio.Task[list[Seen]] | None = None

    async def start(self) -> None:
        ready = asyncio.Event()
        self._task = asyncio.create_task(read_outputs(*self.args, ready.set))
        await asyncio.wait_for(ready.wait(), 60)

    async def result(self) -> list[Seen]:
        assert self._task is not None
        return await self._task

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class ProcessReader:
    """The reader in a process of its own (``python -m bench.latency read``): it prints
    ``ready`` once positioned, then every output read as one JSON line."""

    def __init__(self, servers: str, sink: str, total: int, isolation_level: str) -> None:
        self.argv = [
            sys.executable, "-m", "bench.latency", "read", servers, sink, str(total),
            isolation_level,
        ]  # fmt: skip
        self._proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            *self.argv, stdout=asyncio.subprocess.PIPE, limit=1 << 30
        )
        assert self._proc.stdout is not None
        line = await asyncio.wait_for(self._proc.stdout.readline(), 60)
        if line.strip() != b"ready":
            raise RuntimeError(f"latency reader did not start: {line!r}")

    async def result(self) -> list[Seen]:
        assert self._proc is not None
        assert self._proc.stdout is not None
        line = await self._proc.stdout.readline()
        await self._proc.wait()
        return [tuple(s) for s in orjson.loads(line)]

    async def close(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
            await self._proc.wait()


def _latencies(seen: list[Seen], source_appended: list[int | None]) -> Latencies:
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


def _read_main(servers: str, sink: str, total: str, isolation_level: str) -> None:
    def ready() -> None:
        sys.stdout.buffer.write(b"ready\n")
        sys.stdout.buffer.flush()

    seen = asyncio.run(read_outputs(servers, sink, int(total), isolation_level, ready))
    sys.stdout.buffer.write(orjson.dumps(seen) + b"\n")
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    if len(sys.argv) != 6 or sys.argv[1] != "read":
        raise SystemExit("usage: python -m bench.latency read SERVERS SINK COUNT ISOLATION_LEVEL")
    _read_main(*sys.argv[2:])
