"""Per-record cost of the pipeline's processing stages, in process (no broker).

The query, stream and tables of ``bench/pipeline.py``; the tables in memory behind the agents'
row cache (:class:`agents.cache.CachedTable`), as a worker reads them. For a batch of orders it
prints the thread CPU time per record of: JSON decode (declared columns cast, DECIMAL exact),
the compiled query, output encoding, and the whole :meth:`agents.process.BatchProcessor.run`
(decode → query → encode → append to an in-memory output) with the closures and with the
query's generated function (:mod:`sql.codegen`, :class:`agents.fused.FusedProcessor`), rounds
alternating, best of ``--repeat`` — the part of ``bench/pipeline.py``'s per-event CPU that is
ours, without aiokafka's fetch and record batches. ``--job enrich``: the enrichment job of
``bench/peers.py`` instead (lookup, filter tier = 'gold' AND amount > 500). ``--profile``
prints the top functions of one round of each engine instead (cProfile). The set-up is shared
with ``bench.pipeline_batch`` and ``bench.pipeline_icount``: :func:`bench_inputs` (query,
tables, orders), :func:`record_batches`, :func:`fused_processor` and :class:`Collect`.

    .venv/bin/python -m bench.pipeline_stages [--job pipeline|enrich] [--orders 20000]
        [--repeat 7] [--profile]
"""

from __future__ import annotations

import argparse
import gc
import inspect
import random
import time
from collections.abc import Callable, Mapping
from typing import Any, cast

from aiokafka import AIOKafkaProducer
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from agents.cache import CachedTable
from agents.codec import Decoder, make_decoder, make_encoder
from agents.fused import FusedProcessor
from agents.process import BatchProcessor
from agents.sink import MAX_BATCH_BYTES, Output
from bench.orders import SYMBOLS, encode_order, order
from bench.peers import SQL_ENRICH, SQL_HEAD
from bench.pipeline import PIPELINE
from core import codec
from sql import SqlType, compile_query, parse_script
from tables.apply import Malformed
from tables.memory import MemoryTable
from tests.support.rocks import Record


class _Batches:
    """What :class:`agents.sink.Output` needs of a producer to fill record batches (never sent)."""

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(MAX_BATCH_BYTES, 0)


class Collect(Output):
    """The output as a worker's (:class:`agents.sink.Output`): records appended into aiokafka's
    record batches, which are never sent; fails on a dead letter (none are expected)."""

    def __init__(self) -> None:
        super().__init__(cast(AIOKafkaProducer, _Batches()))
        for topic in ("out", "enriched", "dlq"):
            self.set_partitions(topic, [0, 1])

    def dead_letter(self, topic: str, item: Malformed, source: str) -> None:
        raise RuntimeError(f"unexpected dead letter: {item.reason}")


def best(fn: Callable[[], Any], repeat: int, setup: Callable[[], Any] = lambda: None) -> float:
    times = []
    for _ in range(repeat):
        setup()
        start = time.thread_time()
        fn()
        times.append(time.thread_time() - start)
    return min(times)


ENRICH = (SQL_HEAD + SQL_ENRICH).format(
    users="users", orders="orders", sink="enriched", partitions=2
)


def enrich_order(i: int, users: int, rng: random.Random) -> bytes:
    amount = f"{rng.randrange(100, 100_000) / 100:.2f}"
    user = rng.randrange(users)
    return f'{{"order_id":{i},"user_id":{user},"amount":{amount},"ts":{i}}}'.encode()


def bench_inputs(
    job: str, orders: int, users: int, rng: random.Random
) -> tuple[str, dict[str, CachedTable], list[bytes]]:
    """What the in-process pipeline benches run: the query of ``job`` (``pipeline``: the one of
    ``bench/pipeline.py``; ``enrich``: ``bench/peers.py``'s enrichment), its tables (``users``
    users, the 50 symbols' limits) in memory behind the agents' row cache as a worker reads
    them, and ``orders`` encoded orders of the job — all drawn from ``rng`` in this order."""
    user_table, limits = MemoryTable("users", "id"), MemoryTable("limits", "symbol")
    for i in range(users):
        row = {"id": i, "name": f"user-{i}", "tier": rng.choice(["basic", "gold"]), "credit": i}
        user_table.put_row(codec.loads_exact(codec.dumps(row)))  # decoded as a ReferenceTable does
    for s in SYMBOLS:
        limits.put_row(codec.loads_exact(f'{{"symbol":"{s}","max_price":500.00}}'))
    tables = {"users": CachedTable(user_table), "limits": CachedTable(limits)}
    if job == "enrich":
        return ENRICH, tables, [enrich_order(i, users, rng) for i in range(orders)]
    values = [encode_order(order(i, users, rng)) for i in range(orders)]
    return PIPELINE.format(partitions=2), tables, values


def record_batches(values: list[bytes], size: int) -> list[bytes]:
    """``values`` as aiokafka's C record batches of ``size`` records (as a worker fetches them;
    offsets from 0 in each batch, the key the value's index)."""
    buffers = []
    for start in range(0, len(values), size):
        builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, 0, 64 * 1024 * 1024)
        for i in range(start, min(start + size, len(values))):
            builder.append(i - start, None, str(i).encode(), values[i], [])
        buffers.append(bytes(builder.build()))
    return buffers


def fused_processor(
    sql: str,
    tables: dict[str, CachedTable],
    columns: Mapping[str, SqlType] | None,
    decode: Decoder | None = None,
    **options: Any,
) -> FusedProcessor:
    """The query's generated batch function as the bench's worker runs it: stream columns
    decoded typed (``decode``, default a new decoder of ``columns``), its sink with the source's
    partitions so outputs keep theirs. ``options``: more of :class:`FusedProcessor`'s."""
    # An older checkout's FusedProcessor (an A/B) may not take the declared columns.
    if "columns" in inspect.signature(FusedProcessor).parameters:
        options["columns"] = columns
    fused = FusedProcessor(
        compile_query(sql, tables, typed_streams=True),
        make_decoder(columns) if decode is None else decode,
        name="q",
        sink_topic="out",
        key_columns=(),
        dead_letter_topic="dlq",
        **options,
    )
    fused.keep_partition = True
    return fused


def main(args: argparse.Namespace) -> None:
    sql, tables, values = bench_inputs(args.job, args.orders, args.users, random.Random(7))
    # As the agents compile it: stream columns arrive typed from the decoder.
    query = compile_query(sql, tables, typed_streams=True)
    decl = parse_script(sql).declarations["orders"]
    decode = make_decoder(decl.columns)
    common: dict[str, Any] = dict(
        name="q", sink_topic="out", key_columns=(), dead_letter_topic="dlq"
    )
    processor = BatchProcessor(
        query, decode, encode=make_encoder(query.output_columns, query.output_types), **common
    )
    fused = fused_processor(sql, tables, decl.columns, decode)
    # As in the bench's worker: the sink has the source's partitions, outputs keep theirs.
    processor.keep_partition = True
    records = [Record("orders", i % 2, i, 0, str(i).encode(), v) for i, v in enumerate(values)]
    decoded = [decode(v) for v in values]
    rows = [r[0] for d in decoded if (r := query.process(d, key="1", timestamp=0))]
    gc.freeze()
    if args.profile:
        import cProfile
        import pstats

        for p in (processor, fused):
            profile = cProfile.Profile()
            profile.runcall(p.run, records, Collect())
            print(f"== {type(p).__name__}")
            pstats.Stats(profile).sort_stats("tottime").print_stats(15)
        return
    process = query.process
    n = len(records)

    def fresh_decoder() -> None:
        # Each round starts with a new decoder: its DECIMAL cache only knows the prices seen
        # earlier in the same batch (49,900 distinct prices), as a worker's would at start.
        processor.decode = make_decoder(decl.columns)
        fused.generated.fn.__globals__["decode"] = make_decoder(decl.columns)

    def each(fn: Callable[[Any], Any], items: list[Any]) -> Callable[[], None]:
        def loop() -> None:
            for item in items:  # results dropped at once, as in the batch (no GC of a list)
                fn(item)

        return loop

    figures = {
        "decode": best(each(lambda v: processor.decode(v), values), args.repeat, fresh_decoder),
        "query": best(each(lambda d: process(d, key="1", timestamp=0), decoded), args.repeat),
        "encode": best(each(processor.encode, rows), args.repeat),
    }
    # The two engines in alternating rounds: the machine's load hits both alike.
    runs: dict[str, list[float]] = {
        "closures (BatchProcessor)": [],
        "generated (FusedProcessor)": [],
    }
    for _ in range(args.repeat):
        for name, p in zip(runs, (processor, fused), strict=True):
            fresh_decoder()
            start = time.thread_time()
            p.run(records, Collect())
            runs[name].append(time.thread_time() - start)
    for name, seconds in figures.items():
        print(f"{name:>28}: {seconds / n * 1e6:6.2f} µs/record")
    for name, times in runs.items():
        t = min(times)
        print(f"{name:>28}: {t / n * 1e6:6.2f} µs/record, {n / t:,.0f} records/s in one thread")
    c, g = (min(t) for t in runs.values())
    print(f"generated / closures: {c / g:.2f}x the records per CPU second ({n} orders, {args.job})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--job", choices=("pipeline", "enrich"), default="pipeline")
    main(parser.parse_args())
