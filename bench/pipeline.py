"""Pipeline figures (streaming-pipelines issue), in one run on one embedded broker and data set.

1. raw aiokafka ``getmany`` + ``orjson.loads`` over the orders topic: the consume-only ceiling;
2. a bare faust per-event agent (``bench/faust_agent.py``: decode, count) over the same topic;
3. our pipeline: ``faust -A app worker`` running a query with IN + EXISTS + a scalar subquery + a
   stream-table join, orders topic → sink topic, every order producing one output — with the
   query's generated function (:mod:`sql.codegen`) and with the closures
   (``TABLESTREAM_CODEGEN=false``), alternating, ``--rounds`` times each (medians); with
   ``--baseline TREE`` also the worker of another checkout (e.g. ``git worktree add`` of the
   commit before a change), in the same rounds: an A/B of the change on one broker and data set;
4. end-to-end latency of that pipeline at a fixed input rate: from the producer's ``send`` to a
   consumer reading the output (the order carries its send time).

    .venv/bin/python -m bench.pipeline [--orders 200000] [--users 10000] [--rate 10000]
        [--rounds 3] [--broker tansu|kafka] [--engines generated,closures] [--baseline TREE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from app.broker import free_port
from bench.brokers import add_broker_option, bench_broker
from bench.latency import latency
from bench.orders import SYMBOLS, encode_order, order
from bench.pipeline_worker import (
    Spy,
    pipeline_throughput,
    proc_cpu,
    profiled,
    query_stats,
    sink_rate,
    start_worker,
)
from core import codec
from tables.topics import TopicSpec, ensure_topics, topic_partitions
from tests.support.worker import ROOT

# The worker helpers moved to bench.pipeline_worker; the other benches import them from here.
__all__ = [
    "PIPELINE",
    "Spy",
    "pipeline_throughput",
    "proc_cpu",
    "produce",
    "profiled",
    "query_stats",
    "seed",
    "sink_rate",
    "start_worker",
]

PIPELINE = """\
CREATE TABLE users (id BIGINT PRIMARY KEY, name VARCHAR, tier VARCHAR, credit BIGINT)
  WITH (topic='bench-users');
CREATE TABLE limits (symbol VARCHAR PRIMARY KEY, max_price DECIMAL(10,2))
  WITH (topic='bench-limits');
CREATE STREAM orders (order_id BIGINT, user_id BIGINT, symbol VARCHAR, price DECIMAL(10,2),
                      qty BIGINT, sent BIGINT)
  WITH (topic='bench-orders', partitions='{partitions}');

CREATE STREAM checked WITH (topic='bench-checked', partitions='{partitions}') AS
SELECT o.order_id, u.name, o.price * o.qty AS notional, o.sent,
       (SELECT max_price FROM limits l WHERE l.symbol = o.symbol) AS max_price
FROM orders o JOIN users u ON u.id = o.user_id
WHERE o.user_id IN (SELECT id FROM users WHERE tier <> 'blocked')
  AND EXISTS (SELECT 1 FROM limits l WHERE l.symbol = o.symbol)
EMIT CHANGES;
"""


async def produce(servers: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=servers, linger_ms=50, acks="all", max_batch_size=1024 * 1024
    )
    await producer.start()
    try:
        pending = []
        for k, v in messages:
            pending.append(await producer.send(topic, v, key=k))
            if len(pending) >= 50_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def seed(
    servers: str, n_orders: int, n_users: int, partitions: int, *, by_user: bool = False
) -> None:
    """Users, limits and orders; orders keyed by their id, or by their user (``by_user``: as a
    stream co-partitioned by user is, ``bench.pipeline_aggregate --key``)."""
    rng = random.Random(7)
    compact = {"cleanup.policy": "compact"}
    await ensure_topics(
        servers,
        [
            TopicSpec("bench-users", 1, configs=compact),
            TopicSpec("bench-limits", 1, configs=compact),
            TopicSpec("bench-orders", partitions),
            TopicSpec("bench-checked", partitions),
        ],
    )
    users = [
        (
            str(i).encode(),
            codec.dumps(
                {"id": i, "name": f"user-{i}", "tier": rng.choice(["basic", "gold"]), "credit": i}
            ),
        )
        for i in range(n_users)
    ]
    await produce(servers, "bench-users", users)
    limits = [(s.encode(), f'{{"symbol":"{s}","max_price":500.00}}'.encode()) for s in SYMBOLS]
    await produce(servers, "bench-limits", limits)
    orders = []
    for i in range(n_orders):
        o = order(i, n_users, rng)
        orders.append((str(o["user_id"] if by_user else i).encode(), encode_order(o)))
    await produce(servers, "bench-orders", orders)


async def raw_ceiling(servers: str, expect: int) -> dict[str, float]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=servers,
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    try:
        tps = [
            TopicPartition("bench-orders", p)
            for p in await topic_partitions(consumer, "bench-orders")
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        n, start, cpu = 0, time.perf_counter(), time.process_time()
        loads = orjson.loads
        while n < expect:
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for msgs in batch.values():
                for m in msgs:
                    loads(m.value)
                n += sum(len(m) for m in batch.values())
        return {"seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu}
    finally:
        await consumer.stop()


def faust_agent(servers: str, expect: int, partitions: int, work: Path) -> dict[str, float]:
    result = work / "faust-agent.json"
    env = {
        **os.environ,
        "BENCH_BROKER": servers,
        "BENCH_TOPIC": "bench-orders",
        "BENCH_EXPECT": str(expect),
        "BENCH_RESULT": str(result),
        "BENCH_PARTITIONS": str(partitions),
        "BENCH_WEB_PORT": str(free_port()),
        "BENCH_DATADIR": str(work / "faust-data"),
        "BENCH_APP_ID": f"bench-faust-{os.getpid()}",
    }
    faust = str(Path(sys.executable).parent / "faust")
    with open(work / "faust-agent.log", "wb") as log:
        proc = subprocess.Popen(
            [faust, "-A", "bench.faust_agent", "worker", "-l", "warn"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 600
        while not result.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((work / "faust-agent.log").read_text()[-3000:])
            time.sleep(0.2)
        time.sleep(0.1)
        return dict(json.loads(result.read_text()))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


async def ours(
    servers: str, work: Path, args: argparse.Namespace, engine: str, n: int
) -> tuple[float, float]:
    """One run of our pipeline into a sink topic of its own: (events/s, µs worker CPU/event)."""
    sink = f"bench-checked-{engine}-{n}"
    await ensure_topics(servers, [TopicSpec(sink, args.partitions)])
    sql = PIPELINE.format(partitions=args.partitions).replace("'bench-checked'", f"'{sink}'")
    extra = {"TABLESTREAM_APP_ID": f"bench-{engine}-{n}"}
    if engine == "closures":
        extra["TABLESTREAM_CODEGEN"] = "false"
    (work / sink).mkdir()
    # The baseline: the worker of another checkout (an A/B of a change on the same broker).
    tree = Path(args.baseline) if engine == "baseline" else None
    worker = start_worker(servers, work / sink, sql, extra, tree)
    # Sampled in the steady state only: from the first record read to the last output acked.
    spy = Spy(worker, args.profile if engine == "generated" and n == 0 else None)
    try:
        try:
            polled = await asyncio.to_thread(
                pipeline_throughput, worker, args.orders, "checked", spy.start
            )
        finally:
            spy.stop()
        return await sink_rate(servers, sink), polled["cpu"] / polled["events"] * 1e6
    finally:
        worker.stop()


async def main(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    try:
        with bench_broker(args.broker, work) as broker:
            t = time.perf_counter()
            await seed(broker.url, args.orders, args.users, args.partitions)
            print(
                f"seeded {args.orders} orders, {args.users} users in {time.perf_counter() - t:.1f}s"
            )
            raw_rate = bare_rate = float("nan")
            if not args.skip_baselines:
                raw = await raw_ceiling(broker.url, args.orders)
                raw_rate = args.orders / raw["seconds"]
                print(
                    f"raw aiokafka getmany + orjson.loads: {raw_rate:,.0f} events/s"
                    f" ({raw['seconds']:.2f}s, {raw['cpu']:.2f}s CPU)"
                )
                bare = faust_agent(broker.url, args.orders, args.partitions, work)
                bare_rate = bare["events"] / bare["seconds"]
                print(
                    f"bare faust per-event agent:          {bare_rate:,.0f} events/s"
                    f" ({bare['seconds']:.2f}s, {bare['cpu']:.2f}s CPU)"
                )
            names = args.engines.split(",") + (["baseline"] if args.baseline else [])
            engines: dict[str, list[tuple[float, float]]] = {e: [] for e in names}
            for n in range(args.rounds):
                for engine in engines:
                    rate, cpu_us = await ours(broker.url, work, args, engine, n)
                    engines[engine].append((rate, cpu_us))
                    print(
                        f"our pipeline (IN+EXISTS+scalar+join), {engine:>9}, round {n + 1}:"
                        f" {rate:,.0f} events/s, {cpu_us:.1f} µs worker CPU/event"
                    )
            med = {e: sorted(v)[len(v) // 2] for e, v in engines.items()}
            for engine, (rate, cpu_us) in med.items():
                print(
                    f"median of {args.rounds}, {engine:>9}: {rate:,.0f} events/s,"
                    f" {cpu_us:.1f} µs/event; ours / faust agent = {rate / bare_rate:.1f}x,"
                    f" ours / raw ceiling = {rate / raw_rate:.2f}"
                )
            for other in ("closures", "baseline"):
                if "generated" in med and other in med:
                    ratio = med["generated"][0] / med[other][0]
                    print(f"generated / {other} = {ratio:.2f}x")
            if args.latency_seconds <= 0:
                return
            worker = start_worker(broker.url, work, PIPELINE.format(partitions=args.partitions))
            try:
                await asyncio.to_thread(pipeline_throughput, worker, args.orders)  # caught up
                await ensure_topics(broker.url, [TopicSpec("bench-floor", args.partitions)])
                runs = (
                    ("broker alone (produce -> consume)", "bench-floor", "bench-floor"),
                    ("through our pipeline", "bench-orders", "bench-checked"),
                )
                for label, source, sink in runs:
                    lat = await latency(
                        broker.url, args.rate, args.latency_seconds, args.users, source, sink
                    )
                    print(
                        f"latency at {args.rate:,}/s for {args.latency_seconds:.0f}s, {label}:"
                        f" {lat.warm().summary()} ({len(lat.total)} records, first 10% skipped)"
                    )
                    if source != sink:
                        # The worker's own share: from a batch's fetch to the acks of its outputs.
                        batch = query_stats(worker).get("checked", {}).get("batch_latency_ms", {})
                        print(
                            f"  of which in the worker (fetch -> outputs acked, last batches):"
                            f" p50 {batch.get('p50', float('nan')):.1f} ms,"
                            f" p99 {batch.get('p99', float('nan')):.1f} ms"
                        )
            finally:
                worker.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each engine (medians)")
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument(
        "--skip-baselines", action="store_true", help="only our pipeline (quick iterations)"
    )
    parser.add_argument(
        "--engines",
        default="generated,closures",
        help="comma-separated: generated (this tree's generated code), closures",
    )
    parser.add_argument(
        "--baseline",
        metavar="TREE",
        help="also run the worker of another checkout (its generated code) in each round: A/B",
    )
    parser.add_argument(
        "--profile", metavar="OUT", help="py-spy the worker's throughput run (.svg or raw .txt)"
    )
    add_broker_option(parser)
    parsed = parser.parse_args()
    if parsed.baseline:
        parsed.baseline = str(Path(parsed.baseline).resolve())
    asyncio.run(main(parsed))
