"""Exactly-once against at-least-once: the pipeline of :mod:`bench.pipeline` (IN + EXISTS + a
scalar subquery + a stream-table join) run by a worker with each ``processing_guarantee`` over
the same orders, alternating, on one broker (Apache Kafka: Tansu has no transactions).

Each run is a fresh app id (its own consumer group: it reads the orders from the beginning) and
its own sink topic; its throughput is polled from the worker's query stats, from the first
record read to the last output committed (exactly-once: its transaction committed).

    .venv/bin/python -m bench.pipeline_eos [--orders 200000] [--rounds 2] [--servers HOST:PORT]

Without ``--servers`` it launches an Apache Kafka broker of its own (``app.broker``, Java 17+
and Maven).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path

from bench.brokers import bench_broker
from bench.pipeline import PIPELINE, pipeline_throughput, query_stats, seed
from tables.topics import TopicSpec, ensure_topics
from tests.support.worker import Worker

GUARANTEES = ("at_least_once", "exactly_once")


def start(servers: str, work: Path, name: str, guarantee: str, partitions: int) -> Worker:
    sink = f"bench-checked-{name}"
    pipeline = work / f"{name}.sql"
    pipeline.write_text(
        PIPELINE.format(partitions=partitions).replace("topic='bench-checked'", f"topic='{sink}'")
    )
    env = {
        "TABLESTREAM_BROKER": servers,
        "TABLESTREAM_APP_ID": f"bench-{name}",
        "TABLESTREAM_PIPELINE": str(pipeline),
        "TABLESTREAM_LOG_LEVEL": "warning",
        "TABLESTREAM_PROCESSING_GUARANTEE": guarantee,
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
    rates: dict[str, list[float]] = {g: [] for g in GUARANTEES}
    for r in range(args.rounds):
        for guarantee in GUARANTEES:
            name = f"{stamp}-{r}-{guarantee}"
            await ensure_topics(servers, [TopicSpec(f"bench-checked-{name}", args.partitions)])
            worker = start(servers, work, name, guarantee, args.partitions)
            try:
                ours = await asyncio.to_thread(pipeline_throughput, worker, args.orders)
                q = query_stats(worker).get("checked", {})
            finally:
                worker.stop()
            rate = ours["events"] / ours["seconds"]
            rates[guarantee].append(rate)
            print(
                f"round {r + 1} {guarantee:>13}: {rate:,.0f} events/s ({ours['events']} events"
                f" in {ours['seconds']:.2f}s, {ours['cpu'] / ours['events'] * 1e6:.1f} µs"
                f" worker CPU/event, batch p99 {ours['p99_batch_ms']:.0f} ms)"
            )
            if q.get("transactions"):
                print(
                    f"  {q['transactions']} transactions,"
                    f" {q['commit_seconds'] / q['transactions'] * 1000:.1f} ms per commit"
                )
    best = {g: max(v) for g, v in rates.items()}
    print(
        f"best of {args.rounds}: at_least_once {best['at_least_once']:,.0f}/s,"
        f" exactly_once {best['exactly_once']:,.0f}/s"
        f" = {best['exactly_once'] / best['at_least_once']:.0%} of at-least-once"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--servers", help="an Apache Kafka cluster, HOST:PORT (default: launch one)"
    )
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    asyncio.run(main(parser.parse_args()))
