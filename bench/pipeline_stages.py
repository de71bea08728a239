"""Per-record cost of the pipeline's processing stages, in process (no broker).

The query, stream and tables of ``bench/pipeline.py``; the tables in memory behind the agents'
row cache (:class:`agents.cache.CachedTable`), as a worker reads them. For a batch of orders it
prints the thread CPU time per record of: JSON decode (declared columns cast, DECIMAL exact),
the compiled query, output encoding, and the whole :meth:`agents.process.BatchProcessor.run`
(decode → query → encode → append to an in-memory output), best of ``--repeat`` rounds — the
part of ``bench/pipeline.py``'s per-event CPU that is ours, without aiokafka's fetch and record
batches. ``--profile`` prints the top functions of one round instead (cProfile).

    .venv/bin/python -m bench.pipeline_stages [--orders 20000] [--repeat 7] [--profile]
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from collections.abc import Callable
from typing import Any

from agents.cache import CachedTable
from agents.codec import make_decoder, make_encoder
from agents.process import BatchProcessor
from bench.pipeline import PIPELINE, SYMBOLS, encode_order, order
from core import codec
from sql import compile_query, parse_script
from tables.apply import Malformed
from tables.memory import MemoryTable
from tests.support.rocks import Record


class Collect:
    """The output: counts appended records, fails on a dead letter (none are expected)."""

    def __init__(self) -> None:
        self.records = 0

    def append(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> None:
        self.records += 1

    def dead_letter(self, topic: str, item: Malformed, source: str) -> None:
        raise RuntimeError(f"unexpected dead letter: {item.reason}")

    def appender(self, topic: str, partition: int) -> Callable[[bytes | None, bytes | None], None]:
        return lambda key, value: self.append(topic, key, value, None, partition)


def best(fn: Callable[[], Any], repeat: int, setup: Callable[[], Any] = lambda: None) -> float:
    times = []
    for _ in range(repeat):
        setup()
        start = time.thread_time()
        fn()
        times.append(time.thread_time() - start)
    return min(times)


def main(args: argparse.Namespace) -> None:
    rng = random.Random(7)
    users, limits = MemoryTable("users", "id"), MemoryTable("limits", "symbol")
    for i in range(args.users):
        row = {"id": i, "name": f"user-{i}", "tier": rng.choice(["basic", "gold"]), "credit": i}
        users.put_row(codec.loads_exact(codec.dumps(row)))  # decoded as a ReferenceTable does
    for s in SYMBOLS:
        limits.put_row(codec.loads_exact(f'{{"symbol":"{s}","max_price":500.00}}'))
    sql = PIPELINE.format(partitions=2)
    # As the agents compile it: stream columns arrive typed from the decoder.
    tables = {"users": CachedTable(users), "limits": CachedTable(limits)}
    query = compile_query(sql, tables, typed_streams=True)
    decl = parse_script(sql).declarations["orders"]
    decode = make_decoder(decl.columns)
    processor = BatchProcessor(
        query,
        decode,
        name="checked",
        sink_topic="out",
        key_columns=(),
        dead_letter_topic="dlq",
        encode=make_encoder(query.output_columns, query.output_types),
    )
    records = [
        Record("orders", i % 2, i, 0, str(i).encode(), encode_order(order(i, args.users, rng)))
        for i in range(args.orders)
    ]
    values = [r.value for r in records]
    decoded = [decode(v) for v in values]
    rows = [query.process(d, key="1", timestamp=0)[0] for d in decoded]
    gc.freeze()
    if args.profile:
        import cProfile
        import pstats

        profile = cProfile.Profile()
        profile.runcall(processor.run, records, Collect())
        pstats.Stats(profile).sort_stats("tottime").print_stats(20)
        return
    process = query.process
    n = len(records)

    def fresh_decoder() -> None:
        # Each round starts with a new decoder: its DECIMAL cache only knows the prices seen
        # earlier in the same batch (49,900 distinct prices), as a worker's would at start.
        processor.decode = make_decoder(decl.columns)

    def each(fn: Callable[[Any], Any], items: list[Any]) -> Callable[[], None]:
        def loop() -> None:
            for item in items:  # results dropped at once, as in the batch (no GC of a list)
                fn(item)

        return loop

    figures = {
        "decode": best(each(lambda v: processor.decode(v), values), args.repeat, fresh_decoder),
        "query": best(each(lambda d: process(d, key="1", timestamp=0), decoded), args.repeat),
        "encode": best(each(processor.encode, rows), args.repeat),
        "BatchProcessor.run": best(
            lambda: processor.run(records, Collect()), args.repeat, fresh_decoder
        ),
    }
    for name, seconds in figures.items():
        print(f"{name:>20}: {seconds / n * 1e6:6.2f} µs/record")
    run = figures["BatchProcessor.run"]
    print(f"{'whole batch':>20}: {n / run:,.0f} records/s in one thread ({n} orders)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--profile", action="store_true")
    main(parser.parse_args())
