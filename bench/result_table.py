"""The result table's cost in process (issue 15): a windowed aggregate's EMIT CHANGES output (an
update of its window's row per input order) applied to a real RocksDB table the way the worker's
loader applies its own output topic — batch by batch, apply → commit → publish the changes.

Modes, alternated in rounds (one process, one machine load): ``every`` — a listener that wants
every change (what the worker's "latest changes" list was until issue 15: every row decoded, old
values too); ``last20`` — that list as subscribed now (``last=20``: the bulk path, each key written
once per batch, the last 20 changes made); ``none`` — no listener. Prints µs of CPU per record.

    .venv/bin/python -m bench.result_table [--orders 200000] [--users 10000] [--batch 2000]
        [--rounds 3] [--modes every,last20,none]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from tables.apply import Applier, Parts
from tables.protocol import Change
from tables.spec import TableSpec
from tables.state import TableState
from tables.store import TableStore

WINDOW_MS = 10_000
STEP_MS = 0.25  # event time per order, as bench.peers: 200k orders span 5 windows
MODES = ("every", "last20", "none")


@dataclass(slots=True)
class Record:
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None


def window_output(orders: int, users: int, partitions: int = 2) -> list[list[Record]]:
    """Per partition, the sink records of ``SELECT user_id, COUNT(*), SUM(amount) ... WINDOW
    TUMBLING(10s) GROUP BY user_id EMIT CHANGES`` over ``bench.peers``' orders."""
    rng = random.Random(11)
    t0 = 1_700_000_000_000
    acc: dict[tuple[int, int], tuple[int, int]] = {}
    out: list[list[Record]] = [[] for _ in range(partitions)]
    for i in range(orders):
        uid, cents, ts = rng.randrange(users), rng.randrange(100, 100_000), t0 + int(i * STEP_MS)
        start = ts - ts % WINDOW_MS
        n, total = acc.get((uid, start), (0, 0))
        n, total = n + 1, total + cents
        acc[(uid, start)] = (n, total)
        key = f"[{uid},{start}]".encode()
        value = (
            f'{{"user_id":{uid},"window_start":{start},"window_end":{start + WINDOW_MS},'
            f'"n":{n},"total":{total // 100}.{total % 100:02d}}}'
        ).encode()
        part = out[uid % partitions]
        part.append(Record(len(part), ts, key, value))
    return out


def batches(parts: list[list[Record]], size: int) -> list[Parts]:
    """Fetches of ``size`` records per partition, partitions in turn (as a loader reads them)."""
    longest = max(len(p) for p in parts)
    return [
        [("per_user", p, recs[at : at + size]) for p, recs in enumerate(parts) if recs[at:]]
        for at in range(0, longest, size)
    ]


def run(mode: str, fetches: list[Parts], records: int, where: Path) -> float:
    """µs of CPU per record applying every fetch with ``mode``'s listener."""
    spec = TableSpec("per_user", "per_user", None, exact_decimals=True)
    store = TableStore(where)
    store.open()
    state = TableState(spec, store)
    recent: deque[Change] = deque(maxlen=20)
    if mode == "every":
        state.feed.subscribe(recent.append)
    elif mode == "last20":
        state.feed.subscribe(recent.append, last=20)
    applier = Applier(spec.key_field, state.decode, state.versions, spec.check)
    feed = state.feed
    try:
        cpu = time.process_time()
        for parts in fetches:
            batch = state.batch()
            result = applier.apply_parts(parts, store, batch, bool(feed), feed.tail)
            state.commit(batch)
            feed.publish_batch(result.changes)
        spent = time.process_time() - cpu
        assert store.version == records, (store.version, records)
        if mode != "none":
            assert len(recent) == 20
            assert recent[-1].version == records
        return spent / records * 1e6
    finally:
        store.close()


def main(args: argparse.Namespace) -> None:
    modes = [m for m in args.modes.split(",") if m]
    unknown = set(modes) - set(MODES)
    if unknown:
        raise SystemExit(f"--modes: unknown {sorted(unknown)}; known: {', '.join(MODES)}")
    parts = window_output(args.orders, args.users)
    records = sum(len(p) for p in parts)
    fetches = batches(parts, args.batch)
    keys = len({r.key for p in parts for r in p})
    print(f"{records:,} updates of {keys:,} window rows, fetches of {args.batch:,} per partition")
    work = Path(tempfile.mkdtemp(prefix="bench-result-table-"))
    figures: dict[str, list[float]] = {m: [] for m in modes}
    try:
        for round_ in range(args.rounds):
            for mode in modes:
                where = work / f"{mode}-{round_}"
                figures[mode].append(run(mode, fetches, records, where))
                shutil.rmtree(where, ignore_errors=True)
                print(f"round {round_ + 1} {mode:<7} {figures[mode][-1]:6.2f} µs CPU/record")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\nmode     µs CPU/record (median)   rounds")
    for mode, xs in figures.items():
        every = ", ".join(f"{x:.2f}" for x in xs)
        print(f"{mode:<8} {statistics.median(xs):>10.2f}               [{every}]")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=2000, help="records per partition and fetch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--modes", default=",".join(MODES))
    main(parser.parse_args())
