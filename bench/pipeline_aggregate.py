"""Throughput of a stateful query through its two stages (repartition, then one aggregation task
per partition), on the embedded broker and the data of ``bench.pipeline``:

    CREATE TABLE per_user AS SELECT user_id, COUNT(*), SUM(price * qty) ... GROUP BY user_id

every order producing one EMIT CHANGES row. One worker runs both stages; the figure is from the
first record stage 1 reads to the last output acknowledged (on Apache Kafka: the sink topic's
end offsets reach one output per order), with the worker's CPU per event.

``--key``: the orders are keyed by their user and the stream declares it (``key='user_id'``):
the query is co-partitioned, one stage reads the orders (:mod:`agents.copartition`), no
repartition topic.

    .venv/bin/python -m bench.pipeline_aggregate [--orders 200000] [--users 10000]
        [--broker tansu|kafka] [--sink table|stream]
        [--query group|window] [--key] [--max-records N] [--tree CHECKOUT]

``--tree``: run another checkout's worker (an A/B of two commits measured by this bench).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.brokers import add_broker_option, bench_broker
from bench.pipeline import proc_cpu, profiled, query_stats, seed, start_worker
from tests.support.worker import Worker

PIPELINE = """\
CREATE STREAM orders (order_id BIGINT, user_id BIGINT, symbol VARCHAR, price DECIMAL(10,2),
                      qty BIGINT, sent BIGINT)
  WITH (topic='bench-orders', partitions='{partitions}'{key});

CREATE {sink} per_user WITH (topic='bench-per-user', partitions='{partitions}') AS
SELECT user_id, COUNT(*) AS orders, SUM(price * qty) AS notional
FROM orders
{window}GROUP BY user_id
EMIT CHANGES;
"""
#: The topic of PIPELINE's results.
SINK = "bench-per-user"
#: ``--query window``: the same aggregate per 10-second tumbling window of the record timestamps
#: (the peers' window job, ``bench.peers``, on this data set).
WINDOW = "WINDOW TUMBLING(10s)\n"


def throughput(worker: Worker, expect: int, acked: Callable[[], int]) -> dict[str, float]:
    """Polls /queries/: from stage 1's first record to stage 2's last acknowledged output
    (``acked``: the outputs on the broker, read once the worker has processed every order)."""
    assert worker.proc is not None
    first = cpu0 = None
    n0 = 0
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        stats = query_stats(worker)
        stage2 = stats.get("per_user", {})
        # Co-partitioned: one stage, reading the orders itself.
        stage1 = stats.get("per_user-repartition", stage2)
        n = stage1.get("records_in", 0)
        if n and first is None:
            first, cpu0, n0 = time.perf_counter(), proc_cpu(worker.proc.pid), n
        done = stage2.get("records_out", 0) >= expect and stage2.get("lag") == 0
        if done and acked() >= expect:
            assert first is not None
            assert cpu0 is not None
            return {
                "seconds": time.perf_counter() - first,
                "events": expect - n0,
                "cpu": proc_cpu(worker.proc.pid) - cpu0,
            }
        if worker.proc.poll() is not None:
            raise RuntimeError(worker.tail())
        time.sleep(0.02)
    raise RuntimeError("aggregate pipeline did not finish")


class SinkEnd:
    """The sink topic's end offsets summed (records the broker acknowledged), asked from this
    thread's own event loop by a consumer connected before the run."""

    def __init__(self, servers: str, topic: str, partitions: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.tps = [TopicPartition(topic, p) for p in range(partitions)]
        self.consumer = self.loop.run_until_complete(self._started(servers))

    @staticmethod
    async def _started(servers: str) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(bootstrap_servers=servers)  # made in its loop
        await consumer.start()
        return consumer

    def __call__(self) -> int:
        ends = self.loop.run_until_complete(self.consumer.end_offsets(self.tps))
        return sum(ends.values())

    def close(self) -> None:
        self.loop.run_until_complete(self.consumer.stop())
        self.loop.close()


def measure(worker: Worker, servers: str, args: argparse.Namespace) -> dict[str, Any]:
    if args.broker != "kafka":
        # Tansu's end offsets do not add up to what it holds (20,000 outputs on, 7,919 and 7,919
        # answered): there the run ends once the worker processed every order, as before.
        return throughput(worker, args.orders, lambda: args.orders)
    sink = SinkEnd(servers, SINK, args.partitions)
    try:
        return throughput(worker, args.orders, sink)
    finally:
        sink.close()


async def main(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-aggregate-"))
    try:
        with bench_broker(args.broker, work) as broker:
            await seed(broker.url, args.orders, args.users, args.partitions, by_user=args.key)
            worker = start_worker(
                broker.url,
                work,
                PIPELINE.format(
                    partitions=args.partitions,
                    sink=args.sink.upper(),
                    window=WINDOW if args.query == "window" else "",
                    key=", key='user_id'" if args.key else "",
                ),
                extra=(
                    {"TABLESTREAM_QUERY_MAX_RECORDS": str(args.max_records)}
                    if args.max_records
                    else None
                ),
                tree=args.tree,
            )
            try:
                with profiled(worker, args.profile):
                    got = await asyncio.to_thread(measure, worker, broker.url, args)
            finally:
                worker.stop()
            rate = got["events"] / got["seconds"]
            stages = "one stage (co-partitioned)" if args.key else "two stages"
            print(
                f"{'WINDOW TUMBLING(10s) ' if args.query == 'window' else ''}GROUP BY user_id"
                f" ({args.sink}), {stages} in one worker: {rate:,.0f} events/s"
                f" ({got['events']} events in {got['seconds']:.2f}s,"
                f" {got['cpu']:.2f}s worker CPU = {got['cpu'] / got['events'] * 1e6:.1f} µs/event)"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--query", choices=("group", "window"), default="group")
    parser.add_argument(
        "--key",
        action="store_true",
        help="orders keyed by user_id and declared so: co-partitioned, no repartition stage",
    )
    parser.add_argument(
        "--sink",
        choices=("table", "stream"),
        default="table",
        help="CREATE TABLE (the worker also keeps the result table) or CREATE STREAM (it does not)",
    )
    parser.add_argument(
        "--profile", metavar="OUT", help="py-spy the worker's run (.svg or raw .txt)"
    )
    parser.add_argument(
        "--max-records",
        type=int,
        help="records the query fetches per batch (TABLESTREAM_QUERY_MAX_RECORDS; default 10,000)",
    )
    parser.add_argument(
        "--tree",
        type=lambda path: Path(path).resolve(),
        help="another checkout whose worker runs (an A/B with this bench)",
    )
    add_broker_option(parser)
    asyncio.run(main(parser.parse_args()))
