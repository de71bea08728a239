"""Exactly-once against at-least-once on Apache Kafka (Tansu has no transactions), one broker:

1. throughput: the pipeline of :mod:`bench.pipeline` (IN + EXISTS + a scalar subquery + a
   stream-table join) over the same seeded orders, a fresh worker per ``processing_guarantee``
   and round, the two alternating (and which goes first too); the median and the spread of the
   rounds, and of the per-round ratios — single rounds swing by ±50% on a shared machine;
2. latency at a fixed input rate: the broker hop alone, then for each guarantee from the
   producer's send to a reader of the sink (``read_committed`` for exactly-once: when the
   output's transaction committed);
3. restart after SIGKILL under exactly-once, orders coming at a steady rate: from the restart
   to the web view answering, to the first transaction the new worker committed, and to its
   first output a ``read_committed`` reader sees.

Each worker is a fresh app id (its own consumer group and transactional ids) and its own sink;
throughput runs read the seeded orders from the beginning, latency and restart runs an empty
orders topic of their own. Throughput is polled from the worker's query stats, from the first
record read to the last output committed (exactly-once: its transaction committed).

    .venv/bin/python -m bench.pipeline_eos [--orders 200000] [--rounds 5] [--rate 10000]
        [--latency-seconds 10] [--restarts 3] [--servers HOST:PORT]
        [--guarantees at_least_once,exactly_once] [--commit-interval-ms N]
        [--tick-ms 1] [--linger-ms 0] [--reader-in-loop] [--warmup-seconds 30]

Without ``--servers`` it launches an Apache Kafka broker of its own (``app.broker``, Java 17+
and Maven).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.brokers import bench_broker
from bench.latency import LOG_APPEND_TIME, Latencies, latency
from bench.orders import encode_order, order
from bench.pipeline import PIPELINE, pipeline_throughput, query_stats, seed
from tables.topics import TopicSpec, ensure_topics
from tests.support.worker import Worker

GUARANTEES = ("at_least_once", "exactly_once")


def start(
    servers: str,
    work: Path,
    name: str,
    guarantee: str,
    partitions: int,
    source: str = "bench-orders",
    commit_ms: int | None = None,
) -> Worker:
    """A worker running the pipeline from ``source`` into ``bench-checked-<name>``."""
    pipeline = work / f"{name}.sql"
    pipeline.write_text(
        PIPELINE.format(partitions=partitions)
        .replace("topic='bench-checked'", f"topic='bench-checked-{name}'")
        .replace("topic='bench-orders'", f"topic='{source}'")
    )
    env = {
        "TABLESTREAM_BROKER": servers,
        "TABLESTREAM_APP_ID": f"bench-{name}",
        "TABLESTREAM_PIPELINE": str(pipeline),
        "TABLESTREAM_LOG_LEVEL": "warning",
        "TABLESTREAM_PROCESSING_GUARANTEE": guarantee,
        **({"TABLESTREAM_COMMIT_INTERVAL_MS": str(commit_ms)} if commit_ms is not None else {}),
    }
    return Worker(work / name, env).start()


async def main(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-eos-"))
    try:
        if args.servers:
            await run(args, args.servers, work)
        else:
            with bench_broker("kafka", work) as broker:
                await run(args, broker.url, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def run(args: argparse.Namespace, servers: str, work: Path) -> None:
    stamp = int(time.time())
    t = time.perf_counter()
    await seed(servers, args.orders, args.users, args.partitions)
    print(f"seeded {args.orders} orders, {args.users} users in {time.perf_counter() - t:.1f}s")
    print(f"load average {load()}")
    if args.rounds:
        await throughput(args, servers, work, stamp)
    if args.latency_seconds > 0:
        floor = f"bench-floor-{stamp}"
        await ensure_topics(servers, [TopicSpec(floor, args.partitions, configs=LOG_APPEND_TIME)])
        if args.warmup_seconds > 0:
            # A broker runs for days: its JIT has long compiled the produce and fetch paths.
            # A fresh one spends its first minute compiling (C2 took ~half a core for ~50 s at
            # 10k/s here), which would be measured as latency: the same traffic, not counted.
            warm = await latency(
                servers, args.rate, args.warmup_seconds, args.users, floor, floor, **client(args)
            )
            print(f"warm-up, broker alone (not counted): {summary(warm)} load {load()}")
        lat = await latency(
            servers, args.rate, args.latency_seconds, args.users, floor, floor, **client(args)
        )
        print(f"latency of the broker alone (produce -> consume): {summary(lat)} load {load()}")
        print(f"  {lat.warm().breakdown()}")
        for guarantee in args.guarantees.split(","):
            await latency_of(args, servers, work, f"{stamp}-lat-{guarantee}", guarantee)
    if args.restarts:
        await restarts(args, servers, work, f"{stamp}-restart")
    print(f"load average {load()}")


def client(args: argparse.Namespace) -> dict[str, Any]:
    """How the latency runs' producer and reader are set up (bench.latency)."""
    return {
        "reader_process": not args.reader_in_loop,
        "tick": args.tick_ms / 1000,
        "linger_ms": args.linger_ms,
    }


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


async def throughput(args: argparse.Namespace, servers: str, work: Path, stamp: int) -> None:
    rates: dict[str, list[float]] = {g: [] for g in GUARANTEES}
    for r in range(args.rounds):
        # Which goes first alternates too: a machine getting busier or quieter during a round
        # favours neither.
        for guarantee in GUARANTEES if r % 2 == 0 else GUARANTEES[::-1]:
            name = f"{stamp}-{r}-{guarantee}"
            await ensure_topics(servers, [TopicSpec(f"bench-checked-{name}", args.partitions)])
            worker = start(servers, work, name, guarantee, args.partitions)
            try:
                ours = await asyncio.to_thread(pipeline_throughput, worker, args.orders)
                q = query_stats(worker).get("checked", {})
            finally:
                worker.stop()
            if ours["events"] < args.orders // 2:
                raise SystemExit(f"{name}: read too fast to time; more --orders")
            rate = ours["events"] / ours["seconds"]
            rates[guarantee].append(rate)
            commits = ""
            if q.get("transactions"):
                per = q["commit_seconds"] / q["transactions"] * 1000
                commits = f"; {q['transactions']} transactions, {per:.0f} ms per commit"
            print(
                f"round {r + 1} {guarantee:>13}: {rate:,.0f} events/s ({ours['events']} events"
                f" in {ours['seconds']:.2f}s, {ours['cpu'] / ours['events'] * 1e6:.1f} µs"
                f" worker CPU/event, batch p99 {ours['p99_batch_ms']:.0f} ms{commits})"
                f" load {load()}"
            )
    for g, v in rates.items():
        print(
            f"{g:>13}: median {statistics.median(v):,.0f}/s, spread {min(v):,.0f}"
            f"-{max(v):,.0f}/s over {len(v)} rounds"
        )
    ratios = [e / a for a, e in zip(rates["at_least_once"], rates["exactly_once"], strict=True)]
    medians = statistics.median(rates["exactly_once"]) / statistics.median(rates["at_least_once"])
    print(
        f"exactly-once / at-least-once: ratio of the medians {medians:.0%}; per round median"
        f" {statistics.median(ratios):.0%}, spread {min(ratios):.0%}-{max(ratios):.0%}"
        f" ({', '.join(f'{x:.0%}' for x in ratios)})"
    )


async def wait_running(worker: Worker, partitions: int, timeout: float = 120.0) -> None:
    """Until the worker's query holds every source partition (its producers started)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        q = (await asyncio.to_thread(query_stats, worker)).get("checked", {})
        if q.get("state") == "running" and len(q.get("partitions", {})) == partitions:
            return
        if worker.proc is None or worker.proc.poll() is not None:
            raise RuntimeError(worker.tail())
        await asyncio.sleep(0.1)
    raise RuntimeError(f"worker not running after {timeout}s:\n{worker.tail()}")


async def latency_of(
    args: argparse.Namespace, servers: str, work: Path, name: str, guarantee: str
) -> None:
    source, sink = f"bench-orders-{name}", f"bench-checked-{name}"
    # Append times stamped by the broker: each latency splits into its stages (bench.latency).
    await ensure_topics(
        servers,
        [
            TopicSpec(source, args.partitions, configs=LOG_APPEND_TIME),
            TopicSpec(sink, args.partitions, configs=LOG_APPEND_TIME),
        ],
    )
    worker = start(servers, work, name, guarantee, args.partitions, source, args.commit_interval_ms)
    try:
        await wait_running(worker, args.partitions)
        isolation = "read_committed" if guarantee == "exactly_once" else "read_uncommitted"
        lat = await latency(
            servers, args.rate, args.latency_seconds, args.users, source, sink, isolation,
            **client(args),
        )  # fmt: skip
        batch = (await asyncio.to_thread(query_stats, worker)).get("checked", {})
    finally:
        worker.stop()
    print(
        f"latency {guarantee} at {args.rate:,}/s for {args.latency_seconds:.0f}s ({isolation}"
        f" reader): {summary(lat)} load {load()}"
    )
    print(f"  {lat.warm().breakdown()}")
    ms = batch.get("batch_latency_ms", {})
    print(
        f"  in the worker, fetch -> outputs acked (last batches): p50 {ms.get('p50')} ms,"
        f" p99 {ms.get('p99')} ms"
    )


def summary(lat: Latencies) -> str:
    return f"{lat.warm().summary()} ({len(lat.total)} records, first 10% skipped)"


async def feed(servers: str, topic: str, rate: int, users: int, stop: asyncio.Event) -> None:
    """Orders into ``topic`` at ``rate``/s until ``stop``."""
    producer = AIOKafkaProducer(bootstrap_servers=servers, linger_ms=5)
    await producer.start()
    rng = random.Random(5)
    try:
        i, start_t = 2 * 10**9, time.perf_counter()
        per_tick = max(1, rate // 100)
        while not stop.is_set():
            for _ in range(per_tick):
                await producer.send(topic, encode_order(order(i, users, rng)), key=str(i).encode())
                i += 1
            target = start_t + (i - 2 * 10**9) / rate
            await asyncio.sleep(max(0.0, target - time.perf_counter()))
    finally:
        await producer.stop()


async def arrivals(servers: str, topic: str, seen: list[float], stop: asyncio.Event) -> None:
    """When each committed output of ``topic`` reaches a ``read_committed`` reader."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=servers,
        enable_auto_commit=False,
        isolation_level="read_committed",
        fetch_max_wait_ms=5,
    )
    await consumer.start()
    try:
        await consumer._client.add_topic(topic)
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=50)
            now = time.monotonic()
            seen.extend(now for msgs in batch.values() for _ in msgs)
    finally:
        await consumer.stop()


async def restarts(args: argparse.Namespace, servers: str, work: Path, name: str) -> None:
    """An exactly-once worker SIGKILLed while orders come at ``--restart-rate``; each restart
    timed to its web view, its first committed transaction and its first visible output."""
    source, sink = f"bench-orders-{name}", f"bench-checked-{name}"
    await ensure_topics(
        servers, [TopicSpec(source, args.partitions), TopicSpec(sink, args.partitions)]
    )
    stop = asyncio.Event()
    seen: list[float] = []
    tasks = [
        asyncio.create_task(feed(servers, source, args.restart_rate, args.users, stop)),
        asyncio.create_task(arrivals(servers, sink, seen, stop)),
    ]
    worker = start(servers, work, name, "exactly_once", args.partitions, source)
    figures: list[tuple[float, float, float]] = []
    try:
        await first_commit(worker)
        for _ in range(args.restarts):
            await asyncio.sleep(2.0)  # mid-stream: transactions open
            worker.stop(signal.SIGKILL)
            await asyncio.sleep(0.5)
            t0 = time.monotonic()
            # The same app and data directory: its static group member, its producers' ids.
            worker = start(servers, work, name, "exactly_once", args.partitions, source)
            web, committed = await first_commit(worker)
            visible = next((t for t in seen if t > t0), None)
            while visible is None:
                await asyncio.sleep(0.02)
                visible = next((t for t in seen if t > t0), None)
            figures.append((web - t0, committed - t0, visible - t0))
            print(
                f"restart after SIGKILL: web view {web - t0:.1f}s, first transaction committed"
                f" {committed - t0:.1f}s, first output read_committed {visible - t0:.1f}s"
                f" (orders at {args.restart_rate:,}/s) load {load()}"
            )
    finally:
        worker.stop()
        stop.set()
        await asyncio.gather(*tasks)
    if figures:
        cols = list(zip(*figures, strict=True))
        print(
            f"restart, median of {len(figures)}: web {statistics.median(cols[0]):.1f}s, first"
            f" commit {statistics.median(cols[1]):.1f}s, first visible output"
            f" {statistics.median(cols[2]):.1f}s"
        )


async def first_commit(worker: Worker, timeout: float = 120.0) -> tuple[float, float]:
    """(when the web view first answered, when the query's first transaction committed)."""
    web = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        q = await asyncio.to_thread(query_stats, worker)
        now = time.monotonic()
        if q and web is None:
            web = now
        if q.get("checked", {}).get("transactions", 0) > 0:
            assert web is not None
            return web, now
        if worker.proc is None or worker.proc.poll() is not None:
            raise RuntimeError(worker.tail())
        await asyncio.sleep(0.02)
    raise RuntimeError(f"no transaction committed after {timeout}s:\n{worker.tail()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--servers", help="an Apache Kafka cluster, HOST:PORT (default: launch one)"
    )
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5, help="throughput rounds (0: none)")
    parser.add_argument("--rate", type=int, default=10_000, help="latency run input rate")
    parser.add_argument("--latency-seconds", type=float, default=10.0, help="0: no latency")
    parser.add_argument(
        "--commit-interval-ms",
        type=int,
        default=None,
        help="TABLESTREAM_COMMIT_INTERVAL_MS of the latency runs (default: the worker's, 100)",
    )
    parser.add_argument(
        "--tick-ms", type=float, default=1.0, help="latency runs: the producer sends every N ms"
    )
    parser.add_argument("--linger-ms", type=int, default=0, help="latency runs' producer")
    parser.add_argument(
        "--warmup-seconds",
        type=float,
        default=30.0,
        help="latency: this long of the same traffic through the broker first, not counted",
    )
    parser.add_argument(
        "--reader-in-loop",
        action="store_true",
        help="latency runs: the reader in the producer's event loop (default: its own process)",
    )
    parser.add_argument(
        "--guarantees",
        default=",".join(GUARANTEES),
        help="latency runs, comma-separated (default: at_least_once,exactly_once)",
    )
    parser.add_argument("--restarts", type=int, default=3, help="SIGKILL+restarts (0: none)")
    parser.add_argument("--restart-rate", type=int, default=2_000, help="orders/s meanwhile")
    asyncio.run(main(parser.parse_args()))
