"""CPU per event of a co-partitioned stateful query as the worker runs it, without the broker.

``bench.pipeline_aggregate --key --sink stream``'s query and orders (``--query window``: its
10-second tumbling windows of the record timestamps), 2 partitions keyed by user as Kafka's
default partitioner places them, one :class:`agents.tasks.AggregateTask` per partition behind
its key check (:mod:`agents.copartition`, the generated fold where it applies) with a real
RocksDB store. Each fetch takes up to 10,000 records from Kafka record batches as aiokafka's C
records (the worker's fetch, :func:`core.fetch._take`); outputs go to a real
:class:`agents.sink.Output`'s C record builders (built as the producer builds them, then
dropped); state batches are committed as the worker writes them (``--write-interval``, at most
once a second at-least-once). What this leaves out of the worker's CPU per event:
the network, the event loop, the broker's acks and the result reads.

    .venv/bin/python -m bench.aggregate_worker [--query group|window] [--events 200000]
        [--users 10000] [--repeat N] [--profile OUT.txt] [--codegen/--no-codegen]
        [--write-interval SECONDS]

Instruction counts, independent of the machine's load (the sixth pass's figures)::

    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=cg.out \
        .venv/bin/python -m bench.aggregate_worker --query window --events 100000 --repeat 1 \
        --write-interval 1e9 --callgrind
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import murmur2
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords

from agents.codec import make_decoder, make_encoder
from agents.config import STATE_WRITE_INTERVAL
from agents.copartition import CheckedProcessor, KeyCheck
from agents.pipeline import key_columns
from agents.process import BatchProcessor, OutputLike, PerPartition
from agents.sink import Output
from agents.tasks import AggregateTask
from bench.orders import encode_order, order
from bench.pipeline_aggregate import PIPELINE, WINDOW
from sql import Catalog, CompiledQuery, compile_query, parse_script

PARTITIONS = 2
#: Record timestamps: 200k orders over 4 s across one window boundary, two windows per user (the
#: broker run sends them within a few seconds).
T0 = 1_700_000_008_000
FETCH = 10_000
SINK = "bench-per-user"


def record_batches(args: argparse.Namespace) -> dict[int, list[bytes]]:
    """The orders as Kafka record batches (~1 MiB each, as the bench's producer sends them),
    per partition."""
    rng = random.Random(7)
    parts: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
    open_: dict[int, tuple[DefaultRecordBatchBuilder, int]] = {}
    offsets = dict.fromkeys(range(PARTITIONS), 0)

    def builder() -> DefaultRecordBatchBuilder:
        return DefaultRecordBatchBuilder(2, 0, 0, -1, -1, -1, 1024 * 1024)

    for i in range(args.events):
        o = order(i, args.users, rng)
        key = str(o["user_id"]).encode()
        p = (murmur2(key) & 0x7FFFFFFF) % PARTITIONS
        b, base = open_.get(p) or (builder(), offsets[p])
        if b.append(offsets[p] - base, T0 + i // 50, key, encode_order(o), []) is None:
            parts[p].append(_with_base(b.build(), base))
            b, base = builder(), offsets[p]
            b.append(0, T0 + i // 50, key, encode_order(o), [])
        open_[p] = (b, base)
        offsets[p] += 1
    for p, (b, base) in open_.items():
        parts[p].append(_with_base(b.build(), base))
    return parts


def _with_base(buf: bytearray, base: int) -> bytes:
    # A record batch's base offset is its first 8 bytes (the broker sets it on append).
    return base.to_bytes(8, "big") + bytes(buf[8:])


def fetches(parts: dict[int, list[bytes]]) -> list[dict[int, list[Any]]]:
    """The records per fetch: whole record batches, up to :data:`FETCH` records in all."""
    readers = {p: MemoryRecords(b"".join(bufs)) for p, bufs in parts.items()}
    out: list[dict[int, list[Any]]] = []
    while readers:
        got: dict[int, list[Any]] = {}
        n = 0
        for p in list(readers):
            records = readers[p]
            taken: list[Any] = []
            while records.has_next() and n + len(taken) < FETCH:
                taken.extend(records.next_batch())
            if not records.has_next():
                del readers[p]
            if taken:
                got[p] = taken
                n += len(taken)
            if n >= FETCH:
                break
        out.append(got)
    return out


async def once(args: argparse.Namespace, parts: dict[int, list[bytes]]) -> tuple[list[float], int]:
    """One run over fresh stores: (CPU seconds of each fetch, outputs)."""
    sql = PIPELINE.format(
        partitions=PARTITIONS,
        sink="STREAM",
        window=WINDOW if args.query == "window" else "",
        key=", key='user_id'",
    )
    decl = parse_script(sql).declarations["orders"]
    decode = make_decoder(decl.columns)
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", max_batch_size=512 * 1024)
    output = Output(producer)
    output.set_partitions(SINK, range(PARTITIONS))
    output.set_partitions("dead", [0])
    check = KeyCheck("orders", "bench-orders", PARTITIONS, "user_id", decode)

    def checked() -> tuple[CompiledQuery, PerPartition[OutputLike]]:
        q = compile_query(sql, Catalog(), typed_streams=True)
        processor = BatchProcessor(
            q,
            decode,
            name="per_user",
            sink_topic=SINK,
            key_columns=key_columns(q),
            dead_letter_topic="dead",
            encode=make_encoder(q.output_columns, q.output_types),
        )
        return q, CheckedProcessor(processor, check, "per_user", fold=args.codegen)

    work = Path(tempfile.mkdtemp(prefix="bench-aggregate-worker-"))
    tasks = {
        p: AggregateTask(
            "per_user",
            TopicPartition("bench-orders", p),
            work / f"p{p}",
            checked,
            clock=False,
            repartitioned=False,
        )
        for p in range(PARTITIONS)
    }
    n_out = 0
    try:
        for task in tasks.values():
            task.open()
            task.write_interval = args.write_interval
        # The fetches' bytes ready; reading them into records is timed (the worker's _take).
        readers = fetches(parts) if args.untimed_read else None
        steps: list[float] = []
        clock = time.thread_time
        fetched = iter(readers if readers is not None else fetches(parts))
        while True:
            t = clock()
            got = next(fetched, None)
            if got is None:
                break
            for p, msgs in got.items():
                task = tasks[p]
                _, batch = task.run(msgs, output)
                if batch is not None:
                    task.state.commit(batch)
            n_out += _built(output)
            steps.append(clock() - t)
    finally:
        for task in tasks.values():
            task.close()
        shutil.rmtree(work, ignore_errors=True)
        await producer.stop()
    return steps, n_out


def _built(output: Output) -> int:
    """The output's record batches built (the producer's sender does it) and dropped: how many
    records they held."""
    batches = [*output._full, *(b for b in output._open.values())]
    output._full.clear()
    output._open.clear()
    output.records = 0
    n = 0
    for b in batches:
        b = b[2] if isinstance(b, tuple) else b
        n += b._relative_offset
        b._builder.build()
    return n


def main(args: argparse.Namespace) -> None:
    parts = record_batches(args)
    spy = None
    if args.profile:
        exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        fmt = "raw" if args.profile.endswith(".txt") else "flamegraph"
        pid = str(os.getpid())
        cmd = [exe, "record", "--pid", pid, "-r", "250", "-o", args.profile, "--format", fmt]
        spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
    if args.callgrind:
        # Instruction counts of the runs alone (docs/BENCHMARKS.md, sixth pass): a warm-up run
        # first, then valgrind's instrumentation switched on for this process.
        asyncio.run(once(args, parts))
        subprocess.run(["callgrind_control", "-i", "on", str(os.getpid())], check=True)
    runs = [asyncio.run(once(args, parts))[0] for _ in range(args.repeat)]
    if args.callgrind:
        subprocess.run(["callgrind_control", "-i", "off", str(os.getpid())], check=True)
    if spy is not None:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        spy.wait(60)
    per_event = 1e6 / args.events
    totals = [sum(steps) * per_event for steps in runs]
    # Each fetch's least CPU over the runs, summed: what a run costs with the other processes'
    # interference (this machine is shared) mostly filtered out.
    least = sum(min(steps) for steps in zip(*runs, strict=True)) * per_event
    us = sorted(totals)
    print(
        f"{args.query} (co-partitioned, {'fold' if args.codegen else 'general path'}):"
        f" {', '.join(f'{u:.2f}' for u in totals)} µs/event"
        f" (min {us[0]:.2f}, median {us[len(us) // 2]:.2f}; least per fetch summed {least:.2f};"
        f" {args.events:,} events)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--query", choices=("group", "window"), default="window")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5, help="runs; prints each, min and median")
    parser.add_argument("--profile", metavar="OUT", help="py-spy the runs (.svg or raw .txt)")
    parser.add_argument("--codegen", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--write-interval",
        type=float,
        default=STATE_WRITE_INTERVAL,
        help="seconds between a task's state writes (the worker's at-least-once; 0: every batch)",
    )
    parser.add_argument(
        "--untimed-read",
        action="store_true",
        help="read the record batches into records before the clock starts",
    )
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="under `valgrind --tool=callgrind --instr-atstart=no`: count the runs after a warm-up",
    )
    main(parser.parse_args())
