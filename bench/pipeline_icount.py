"""One batch of ``N`` orders through a query's generated function, in process, for an instruction
count that does not depend on the machine's load (docs/BENCHMARKS.md, pipeline200):

    valgrind --tool=callgrind --callgrind-out-file=cg.0 \
        .venv/bin/python -m bench.pipeline_icount 0
    valgrind --tool=callgrind --callgrind-out-file=cg.N \
        .venv/bin/python -m bench.pipeline_icount 20000

(instructions of the second minus the first, divided by N: per record). ``--job enrich``: the
enrichment job of ``bench/peers.py``. The tables in memory behind the agents' row cache, warmed
by a first batch of every order, as in a running worker; outputs appended into aiokafka record
batches (never sent), in the source's partition, as the bench's worker does. ``--fetch``: the
records read from aiokafka's C record batches of 10k records each, as a worker fetches them,
with the cyclic collector paused (``--gc paused``, as the agents run a batch) or not.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import random
from typing import Any

from aiokafka import TopicPartition
from aiokafka.record.default_records import DefaultRecordBatch

from bench.pipeline_stages import Collect, bench_inputs, fused_processor, record_batches
from core import gcpause
from sql import parse_script
from tests.support.rocks import Record

ORDERS = 30_000
#: Records per fetched record batch (--fetch): the agents' max_records.
FETCH_BATCH = 10_000


def main(args: argparse.Namespace) -> None:
    sql, tables, values = bench_inputs(args.job, ORDERS, 10_000, random.Random(7))
    columns = parse_script(sql).declarations["orders"].columns
    fused = fused_processor(sql, tables, columns)
    records = [Record("orders", 0, i, 0, str(i).encode(), v) for i, v in enumerate(values)]
    fused.run(records, Collect())  # warm: every user and symbol in the row caches
    if not args.fetch:
        fused.run(records[: args.n], Collect())
        return
    # As a worker fetches them: aiokafka's C records of 10k-record batches (built for every
    # order, whatever n: only their reading is counted), the collector's thresholds as the
    # agent has them (paused while a batch is fetched and run, or not: --gc on).
    buffers = record_batches(values, FETCH_BATCH)
    gc.freeze()
    left = args.n
    with gcpause.paused() if args.gc == "paused" else contextlib.nullcontext():
        for buf in buffers:
            if left <= 0:
                break
            batch = DefaultRecordBatch(bytearray(buf))
            batch.validate_crc()
            fetched: list[Any] = []
            fetched.extend(batch)
            del fetched[left:]
            left -= len(fetched)
            fused.run_fetched({TopicPartition("orders", 0): fetched}, Collect())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, help=f"records in the counted batch (at most {ORDERS})")
    parser.add_argument("--job", choices=("pipeline", "enrich"), default="pipeline")
    parser.add_argument(
        "--fetch", action="store_true", help="records read from aiokafka C record batches"
    )
    parser.add_argument(
        "--gc", choices=("paused", "on"), default="paused", help="with --fetch: the collector"
    )
    main(parser.parse_args())
