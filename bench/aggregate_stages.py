"""CPU per event of a stateful query's two stages, in process (no broker).

Stage 1 (:class:`agents.repartition.RepartitionProcessor`: decode, group key, placement, append)
and stage 2 (:class:`agents.tasks.AggregateTask` over a real RocksDB store: the fold, EMIT CHANGES
rows, their keys and encoding, the state write batch committed) run batch by batch over
generated orders, as one worker runs them, with outputs collected in memory. Prints the process
CPU time per event of each stage — the part of ``bench/pipeline_aggregate.py``'s per-event CPU
that is ours, without aiokafka's fetch, record batches and the result table. ``--query group``:
``bench/pipeline_aggregate``'s GROUP BY user_id; ``window``: the window job of ``bench/peers``
(10 s tumbling COUNT and SUM per user). ``--profile``: the top functions of stage 2 (cProfile).
``--copartitioned``: the stream declares ``key='user_id'`` and the orders are keyed by user, so
there is no stage 1: the task reads the orders themselves through its key check
(:mod:`agents.copartition`), as the peers' window job runs (stage 1 then prints 0).

    .venv/bin/python -m bench.aggregate_stages [--query group|window] [--events 100000]
        [--batch 5000] [--profile] [--repeat N] [--copartitioned]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import TopicPartition

from agents.codec import make_decoder, make_encoder
from agents.copartition import CheckedProcessor, KeyCheck
from agents.pipeline import key_columns
from agents.process import BatchProcessor, OutputLike, PerPartition
from agents.repartition import RepartitionProcessor
from agents.tasks import AggregateTask
from sql import Catalog, CompiledQuery, compile_query, parse_script
from tables.apply import Malformed

GROUP = """\
CREATE STREAM orders (order_id BIGINT, user_id BIGINT, symbol VARCHAR, price DECIMAL(10,2),
                      qty BIGINT, sent BIGINT) WITH (topic='orders');
CREATE TABLE per_user AS SELECT user_id, COUNT(*) AS orders, SUM(price * qty) AS notional
FROM orders GROUP BY user_id EMIT CHANGES;
"""
WINDOW = """\
CREATE STREAM orders (order_id BIGINT, user_id BIGINT, amount DECIMAL(10,2), ts BIGINT)
  WITH (topic='orders', timestamp='ts');
CREATE TABLE per_user AS SELECT user_id, COUNT(*) AS n, SUM(amount) AS total
FROM orders WINDOW TUMBLING(10s) GROUP BY user_id EMIT CHANGES;
"""
T0 = 1_700_000_000_000


@dataclass
class Rec:
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class Collect:
    """An output keeping (key, value, headers, timestamp); every key in partition 0."""

    def __init__(self) -> None:
        self.records: list[tuple[Any, ...]] = []

    def partition(self, topic: str, key: bytes | None) -> int:
        return 0

    def append(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
        timestamp: int | None = None,
    ) -> None:
        self.records.append((key, value, headers, timestamp))

    def appender(self, topic: str, partition: int) -> Any:
        return lambda k, v: self.records.append((k, v, None, None))

    def dead_letter(self, topic: str, item: Malformed, source: str) -> None:
        self.records.append((item.key, item.value, None, None))


def orders(query: str, n: int, users: int) -> list[Rec]:
    rng = random.Random(1)
    out = []
    for i in range(n):
        user = rng.randrange(users)
        cents = rng.randrange(1, 100_000)
        money = f"{cents // 100}.{cents % 100:02d}"
        if query == "group":
            value = (
                f'{{"order_id":{i},"user_id":{user},"symbol":"ABC","price":{money},'
                f'"qty":{rng.randrange(1, 100)},"sent":0}}'
            )
        else:  # 200k orders span 50 s of event time: 5 windows
            value = f'{{"order_id":{i},"user_id":{user},"amount":{money},"ts":{T0 + i // 4}}}'
        out.append(Rec(i, str(user).encode(), value.encode(), T0 + i))
    return out


def main(args: argparse.Namespace) -> None:
    runs = [once(args) for _ in range(args.repeat)]
    if args.repeat > 1:
        s1, s2 = sorted(r[0] for r in runs), sorted(r[1] for r in runs)
        print(
            f"{args.query}: {args.repeat} runs, stage 1 min {s1[0]:.2f} median"
            f" {s1[len(s1) // 2]:.2f} µs/event, stage 2 min {s2[0]:.2f} median"
            f" {s2[len(s2) // 2]:.2f} µs/event"
        )


def once(args: argparse.Namespace) -> tuple[float, float]:
    """One run over a fresh store: (stage 1, stage 2) CPU µs per event."""
    sql = GROUP if args.query == "group" else WINDOW
    if args.copartitioned:
        sql = sql.replace("WITH (topic='orders'", "WITH (topic='orders', key='user_id'")
    decl = parse_script(sql).declarations["orders"]
    decode = make_decoder(decl.columns)

    def build() -> tuple[CompiledQuery, BatchProcessor]:
        q = compile_query(sql, Catalog(), typed_streams=True)
        encode = make_encoder(q.output_columns, q.output_types)
        processor = BatchProcessor(
            q,
            decode,
            name="per_user",
            sink_topic="out",
            key_columns=key_columns(q),
            dead_letter_topic="dead",
            encode=encode,
        )
        return q, processor

    def checked() -> tuple[CompiledQuery, PerPartition[OutputLike]]:
        q, processor = build()
        check = KeyCheck("orders", "orders", 1, "user_id", decode)
        return q, CheckedProcessor(processor, check, "per_user")

    first, _ = build()
    stage1 = RepartitionProcessor(
        first.partition_key(), decode, name="per_user", topic="rp", dead_letter_topic="dead"
    )
    work = Path(tempfile.mkdtemp(prefix="bench-aggregate-stages-"))
    topic = "orders" if args.copartitioned else "rp"
    task = AggregateTask(
        "per_user",
        TopicPartition(topic, 0),
        work / "p0",
        checked if args.copartitioned else build,
        clock=False,
        repartitioned=not args.copartitioned,
    )
    task.open()
    source = orders(args.query, args.events, args.users)
    profile = cProfile.Profile() if args.profile else None
    cpu1 = cpu2 = 0.0
    n_out = 0
    try:
        for i in range(0, len(source), args.batch):
            fetched: list[Rec]
            if args.copartitioned:
                fetched = source[i : i + args.batch]
            else:
                out1 = Collect()
                t = time.process_time()
                stage1.run_fetched({TopicPartition("orders", 0): source[i : i + args.batch]}, out1)
                cpu1 += time.process_time() - t
                fetched = [Rec(i + j, k, v, ts, h) for j, (k, v, h, ts) in enumerate(out1.records)]
            out2 = Collect()
            if profile is not None:
                profile.enable()
            t = time.process_time()
            _, batch = task.run(fetched, out2)
            if batch is not None:
                task.state.commit(batch)
            cpu2 += time.process_time() - t
            if profile is not None:
                profile.disable()
            n_out += len(out2.records)
    finally:
        task.close()
        shutil.rmtree(work, ignore_errors=True)
    n = len(source)
    print(
        f"{args.query}: stage 1 {cpu1 / n * 1e6:.2f} µs/event, stage 2 {cpu2 / n * 1e6:.2f}"
        f" µs/event ({n:,} events, {n_out:,} outputs, batches of {args.batch:,})"
    )
    if profile is not None:
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
    last = out2.records[-1] if out2.records else None
    if last is not None and args.repeat == 1:
        print(f"last output: {last[0]!r} {orjson.loads(last[1])}")
    return cpu1 / n * 1e6, cpu2 / n * 1e6


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--query", choices=("group", "window"), default="group")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--repeat", type=int, default=1, help="runs; prints min and median")
    parser.add_argument(
        "--copartitioned",
        action="store_true",
        help="key='user_id' declared, orders keyed by user: one stage (agents.copartition)",
    )
    main(parser.parse_args())
