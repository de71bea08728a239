"""CPU per record of the pipeline's generated batch function over fetched record batches, in
process: with projected lookups (:mod:`sql.codegen.projection`) and without, rounds alternating.

The query, stream and tables of ``bench/pipeline.py`` (``--users`` users, 50 symbols), the
tables in memory behind the agents' row cache and warm (every user and symbol read once, as in
a running worker); the orders read from aiokafka C record batches of 10k records
(``FusedProcessor.run_fetched``, as a worker's fetch hands them over), the cyclic collector
paused as the agents pause it; outputs appended into aiokafka record batches (never sent).
Prints each variant's thread CPU time per record: every round's and the median — the part of
``bench.pipeline``'s worker CPU per event that is the generated function (without the broker,
the fetch's network and the produce path). ``TREE`` runs of this module from two checkouts,
alternating, compare two commits (``--variants projected``)::

    .venv/bin/python -m bench.pipeline_batch [--orders 50000] [--users 10000] [--rounds 7]
        [--variants projected,rows]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from typing import Any

from aiokafka import TopicPartition
from aiokafka.record.default_records import DefaultRecordBatch

from agents.fused import FusedProcessor
from bench.pipeline_stages import Collect, bench_inputs, fused_processor, record_batches
from core import gcpause
from sql import parse_script
from tests.support.rocks import Record

FETCH_BATCH = 10_000
VARIANTS = {"projected": True, "rows": False}


def main(args: argparse.Namespace) -> None:
    sql, tables, values = bench_inputs("pipeline", args.orders, args.users, random.Random(7))
    columns = parse_script(sql).declarations["orders"].columns
    names = args.variants.split(",")
    processors: dict[str, FusedProcessor] = {}
    for name in names:
        p = fused_processor(sql, tables, columns, project=VARIANTS[name])
        records = [Record("orders", 0, i, 0, str(i).encode(), v) for i, v in enumerate(values)]
        p.run(records, Collect())  # warm: every user and symbol in the caches and maps
        processors[name] = p
    buffers = record_batches(values, FETCH_BATCH)
    gc.freeze()
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.rounds):
        for name, p in processors.items():  # alternating: the machine's load hits both alike
            out, cpu = Collect(), 0.0
            with gcpause.paused():
                for buf in buffers:
                    batch = DefaultRecordBatch(bytearray(buf))
                    batch.validate_crc()
                    t0 = time.thread_time()
                    fetched: list[Any] = []
                    fetched.extend(batch)
                    p.run_fetched({TopicPartition("orders", 0): fetched}, out)
                    cpu += time.thread_time() - t0
                    del fetched
            times[name].append(cpu / args.orders * 1e6)
    for name, ts in times.items():
        rounds = " ".join(f"{t:.2f}" for t in ts)
        print(f"{name:>10}: median {statistics.median(ts):.2f} µs/record [{rounds}]")
    if len(names) == 2:
        a, b = (statistics.median(times[n]) for n in names)
        ratios = sorted(x / y for x, y in zip(times[names[0]], times[names[1]], strict=True))
        print(
            f"{names[0]} / {names[1]}: {a / b:.3f} (medians); per round"
            f" {' '.join(f'{r:.2f}' for r in ratios)} ({args.orders} orders, {args.users} users)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=50_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--variants", default="projected,rows")
    main(parser.parse_args())
