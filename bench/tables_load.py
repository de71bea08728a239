"""Reference-table figures on the embedded broker (issue: foundation).

Prints: producer rate (setup), cold load rate, warm restart to ready, cold restore rate after the
data dir is deleted, ``get()`` latency p50/p99/p99.9 with and without decode (and with the cyclic
GC on, and once every key was read), and the RSS of a real ``faust -A app worker`` holding the
table.

    .venv/bin/python -m bench.tables_load [--keys 1000000] [--partitions 4] [--broker tansu|kafka]
        [--restores N] [--skip-worker] [--cache-rows N] [--cache-mb MB] [--[no-]preload]

The row cache defaults to the worker's (``TABLESTREAM_TABLE_CACHE_*``); main before the
``getdefault`` branch benched ``--cache-rows 100000 --cache-mb 128 --no-preload``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from aiokafka import AIOKafkaProducer

from bench.brokers import add_broker_option, bench_broker
from core import codec
from tables.cache_settings import CacheSettings
from tables.reference import ReferenceTable
from tables.spec import TableSpec
from tables.topics import TopicSpec, ensure_topics
from tests.support.worker import Worker


def row(i: int) -> dict[str, object]:
    return {
        "id": i,
        "name": f"user-{i}",
        "tier": ("basic", "gold")[i % 2],
        "credit": i % 9973,
        "city": "Lisbon",
        "active": i % 7 != 0,
    }


async def produce(servers: str, topic: str, keys: int) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=servers,
        linger_ms=50,
        acks=1,
        max_batch_size=1024 * 1024,
        compression_type=None,
    )
    await producer.start()
    start = time.perf_counter()
    try:
        pending = []
        for i in range(keys):
            pending.append(await producer.send(topic, codec.dumps(row(i)), key=str(i).encode()))
            if len(pending) >= 50_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return keys / (time.perf_counter() - start)


#: The row cache of the bench's tables (``--cache-rows``, ``--cache-mb``, ``--preload``).
CACHE = CacheSettings()


async def timed_load(spec: TableSpec, data_dir: Path, servers: str) -> tuple[ReferenceTable, float]:
    table = ReferenceTable(
        spec, data_dir, servers, row_cache=CACHE.cache(), preload_cache=CACHE.preload
    )
    start, cpu = time.perf_counter(), time.process_time()
    await table.start()
    assert await table.wait_until_ready(600)
    secs = time.perf_counter() - start
    # The shared machine's load moves wall time 2x; the CPU the load took moves far less.
    cpu_s = time.process_time() - cpu
    print(
        f"  ({cpu_s:.2f}s process CPU = {len(table) / max(cpu_s, 1e-9):,.0f} rows per CPU-second)"
    )
    return table, secs


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def percentiles(samples: list[int]) -> tuple[float, float, float]:
    """p50, p99 and p99.9 of nanosecond samples, in µs."""
    samples.sort()
    n = len(samples)
    return samples[n // 2] / 1000, samples[int(n * 0.99)] / 1000, samples[int(n * 0.999)] / 1000


class GcPauses:
    """The cyclic GC's collections while installed (``gc.callbacks``): count, total, longest."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, int]] = []  # (generation, ns)
        self._t0 = 0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter_ns()
        else:
            self.pauses.append((info["generation"], time.perf_counter_ns() - self._t0))

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)

    def __str__(self) -> str:
        ns = [p for _, p in self.pauses]
        full = sum(1 for g, _ in self.pauses if g == 2)
        return (
            f"{len(ns)} collections ({full} full), {sum(ns) / 1e6:.1f} ms in all, "
            f"longest {max(ns, default=0) / 1e3:.0f} µs"
        )


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


class Floor:
    """A bare ``dict.get`` over as many str keys as the table holds, timed like ``get()`` on the
    same probes right before it: what any in-memory read costs on this machine at this moment
    (memory latency, TLB misses, the scheduler), the floor under ``get()``'s figures."""

    def __init__(self, keys: int) -> None:
        self.rows = {str(i): i for i in range(keys)}

    def line(self, label: str, fn: Callable[[str], object], probe: list[str]) -> str:
        f50, f99, _ = percentiles(timed(self.rows.get, probe))
        faults = minor_faults()
        p50, p99, p999 = percentiles(timed(fn, probe))
        faults = minor_faults() - faults
        return (
            f"{label:<14} p50 {p50:.2f} µs   p99 {p99:.2f} µs   p99.9 {p999:.2f} µs   "
            f"[bare dict p50 {f50:.2f} p99 {f99:.2f}; {faults / len(probe):.2f} page faults "
            f"a read]   load {os.getloadavg()[0]:.1f}"
        )


def timed(fn: Callable[[str], object], probe: list[str]) -> list[int]:
    clock = time.perf_counter_ns
    samples = []
    for k in probe:
        t0 = clock()
        fn(k)
        samples.append(clock() - t0)
    return samples


async def get_latency(table: ReferenceTable, keys: int, floor: Floor, n: int = 200_000) -> None:
    """``get_raw()`` and ``get()`` over uniform probes, then ``get()`` over a hot set of 10k keys
    (a join's active users): the row cache answers those; uniform probes over 1M keys mostly
    miss it (each pass uses fresh keys), so they show the RocksDB read + decode. Then, with the
    cyclic GC on (a worker's case: the passes before run with it off), uniform probes once
    more, and uniform probes after every key was read once (a long-running reader's steady
    state: what the cache's levels hold of the table by then). Each line prints the bare
    ``dict.get`` floor on the same probes, timed just before."""
    rng = random.Random(1)
    probes = [[str(rng.randrange(keys)) for _ in range(n)] for _ in range(5)]
    hot_keys = [str(k) for k in rng.sample(range(keys), min(keys, 10_000))]
    hot = [rng.choice(hot_keys) for _ in range(n)]
    gc.disable()
    try:
        # The first pass pays for block-cache misses; the next ones show the steady state.
        passes = (
            ("get cold", table.get, probes[0]),
            ("get_raw", table.get_raw, probes[1]),
            ("get uniform", table.get, probes[2]),
            ("get hot 10k", table.get, hot),
        )
        for label, fn, probe in passes:
            if probe is hot:  # warm: a join has seen its active users before
                for k in hot_keys:
                    table.get(k)
            print(floor.line(label, fn, probe), flush=True)
            # The loader's consumer answers its broker between passes: an event loop blocked
            # for the whole series (1M keys, a loaded machine) saw its fetch time out.
            await asyncio.sleep(0.2)
    finally:
        gc.enable()
    with GcPauses() as pauses:
        print(floor.line("get unif. gc", table.get, probes[3]))
    print(f"  (cyclic GC during 'get unif. gc': {pauses})")
    every = [str(k) for k in range(keys)]
    rng.shuffle(every)
    for i, k in enumerate(every):
        table.get(k)
        if i % 100_000 == 0:
            await asyncio.sleep(0.2)
    await asyncio.sleep(0.2)
    with GcPauses() as pauses:
        print(floor.line("get steady", table.get, probes[4]))
    print(f"  (cyclic GC during 'get steady': {pauses})")
    print(f"  ({cached(table)})")


def cached(table: ReferenceTable) -> str:
    cache = table._state.rows
    sized = (
        f" (budget {cache.budget / 2**20:.0f} MB, ~{cache.row_size:.0f} bytes a decoded row, "
        f"bounds {cache.max_rows:,} rows + {cache.max_raw_bytes / 2**20:.0f} MB)"
        if cache.budget
        else ""
    )
    return (
        f"row cache: {len(cache.rows):,} decoded rows, {len(cache.raw):,} stored values in "
        f"{cache.raw_bytes / 2**20:.0f} MB{sized}; bench process RSS "
        f"{rss_mb(os.getpid()):.0f} MB"
    )


async def first_reads(
    label: str, table: ReferenceTable, keys: int, floor: Floor, skip: int = 0, n: int = 200_000
) -> None:
    """Reads of keys not read before (each key once, in random order, after the first
    ``skip`` of that order), cyclic GC on."""
    every = [str(k) for k in range(keys)]
    random.Random(2).shuffle(every)
    with GcPauses() as pauses:
        print(floor.line(label, table.get, every[skip : skip + n]))
    print(f"  (GC: {pauses}; {cached(table)})")


async def restored_reads(
    table: ReferenceTable, keys: int, floor: Floor, warm: bool = False
) -> None:
    """First reads right after a cold restore, or a warm restart (``warm``: RocksDB's block
    cache empty, the rows only in its files): 20k at once (the table just turned ready), then
    100 a loop turn while the preload runs between them (a worker's batches), then the rest
    once the preload is done."""
    w, after = (" w", "warm restart") if warm else ("", "restore")
    await first_reads(f"get at ready{w}", table, keys, floor, n=20_000)
    start, cpu = time.perf_counter(), time.process_time()
    if table.preloading is not None:
        await reads_during(table.preloading, table, keys, floor, f"get in preload{w}")
    secs, cpu_s = time.perf_counter() - start, time.process_time() - cpu
    print(f"  (the preload after the {after}: done {secs:.2f}s later, {cpu_s:.2f}s CPU)")
    await first_reads("get warm done" if warm else "get restored", table, keys, floor, skip=120_000)


async def reads_during(
    preload: asyncio.Future[object],
    table: ReferenceTable,
    keys: int,
    floor: Floor,
    label: str = "get in preload",
) -> None:
    """``get()`` on keys not read before, 100 a loop turn until ``preload`` is done (the
    longest turn between two slices: how long one of its chunks held the loop), cyclic GC on."""
    every = [str(k) for k in range(keys)]
    random.Random(2).shuffle(every)
    probe = every[20_000:120_000]
    samples: list[int] = []
    clock = time.perf_counter_ns
    longest = 0
    with GcPauses() as pauses:
        for i in range(0, len(probe), 100):
            if preload.done():
                break
            samples.extend(timed(table.get, probe[i : i + 100]))
            turn = clock()
            await asyncio.sleep(0)
            longest = max(longest, clock() - turn)
    if samples:
        p50, p99, p999 = percentiles(samples)
        print(
            f"{label:<14} p50 {p50:.2f} µs   p99 {p99:.2f} µs   p99.9 {p999:.2f} µs   "
            f"[{len(samples):,} reads; the loop held up to {longest / 1e6:.1f} ms between "
            f"slices]   load {os.getloadavg()[0]:.1f}"
        )
        print(f"  (GC: {pauses})")
    await preload


async def preloaded_reads(
    spec: TableSpec, data_dir: Path, servers: str, keys: int, floor: Floor
) -> None:
    """First reads after a warm restart (RocksDB's block cache empty) once ``preload_cache()``
    (``TABLESTREAM_TABLE_CACHE_PRELOAD``) read the stored rows into the row cache."""
    table, _ = await timed_load(spec, data_dir, servers)
    start, cpu = time.perf_counter(), time.process_time()
    # The table's own preload (started with it) if it runs one, else one now.
    await (table.preloading or table.preload_cache())
    secs, cpu_s = time.perf_counter() - start, time.process_time() - cpu
    print(f"  (warm restart; the preload took {secs:.2f}s, {cpu_s:.2f}s CPU; {cached(table)})")
    await first_reads("get preloaded", table, keys, floor)
    await table.stop()


async def main(
    keys: int, partitions: int, broker_kind: str, skip_worker: bool, restores: int
) -> None:
    print(f"load average at start: {os.getloadavg()}")
    work = Path(tempfile.mkdtemp(prefix="bench-tables-"))
    with bench_broker(broker_kind) as broker:
        topic = "bench-users"
        await ensure_topics(broker.url, [TopicSpec(topic, partitions)])
        rate = await produce(broker.url, topic, keys)
        print(f"setup: produced {keys:,} records to {partitions} partitions at {rate:,.0f}/s")
        spec = TableSpec("users", topic, key_field="id")

        table, secs = await timed_load(spec, work / "a", broker.url)
        print(f"cold load:     {keys:,} records in {secs:.2f}s = {keys / secs:,.0f} records/s")
        assert len(table) == keys
        await asyncio.sleep(3)  # the post-load compaction runs in a thread
        floor = Floor(keys)
        await get_latency(table, keys, floor)
        await table.stop()

        table, secs = await timed_load(spec, work / "a", broker.url)
        read = table.stats().records_read
        print(f"warm restart:  ready in {secs:.2f}s ({read} records read)")
        if CACHE.preload:  # get after warm restart: reads at its ready and during its preload
            await restored_reads(table, keys, floor, warm=True)
        await table.stop()

        rates = []
        for _ in range(restores):  # the wall rate moves 2x with the machine's load: a median
            shutil.rmtree(work / "a")
            table, secs = await timed_load(spec, work / "a", broker.url)
            rates.append(keys / secs)
            print(f"cold restore:  {keys:,} records in {secs:.2f}s = {keys / secs:,.0f} records/s")
            if len(rates) == restores and CACHE.preload:
                await restored_reads(table, keys, floor)
            await table.stop()
        if restores > 1:
            print(f"cold restore, median of {restores}: {statistics.median(rates):,.0f} records/s")
        if hasattr(ReferenceTable, "preload_cache"):
            await preloaded_reads(spec, work / "a", broker.url, keys, floor)
        print(f"load average at end: {os.getloadavg()}")

        if skip_worker:
            shutil.rmtree(work, ignore_errors=True)
            return
        worker = Worker(
            work / "worker",
            {
                "TABLESTREAM_BROKER": broker.url,
                "TABLESTREAM_TABLES": f"users:{topic}:id",
                "TABLESTREAM_TABLE_CACHE_ROWS": str(CACHE.rows),
                "TABLESTREAM_TABLE_CACHE_MB": str(CACHE.mb),
                "TABLESTREAM_TABLE_CACHE_PRELOAD": str(CACHE.preload).lower(),
            },
        ).start()
        try:
            start = time.perf_counter()
            stats = await asyncio.to_thread(worker.table, "users", 600)
            secs = time.perf_counter() - start
            assert worker.proc is not None
            rss = rss_mb(worker.proc.pid)
            print(
                f"worker:        {stats['size']:,} rows ready {secs:.1f}s after process start, "
                f"RSS {rss:.0f} MB, {stats['bytes_on_disk'] / 1e6:.0f} MB on disk"
            )
            if CACHE.preload:  # the preload runs after ready: RSS once it is done
                await asyncio.sleep(10)
                print(f"worker:        RSS {rss_mb(worker.proc.pid):.0f} MB 10 s after ready")
        finally:
            worker.stop()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--skip-worker", action="store_true", help="no worker RSS figure")
    parser.add_argument("--restores", type=int, default=1, help="cold restores to run (median)")
    default = CacheSettings()  # the worker's defaults (app.settings)
    parser.add_argument(
        "--cache-rows", type=int, default=default.rows, help="decoded rows kept (0: sized)"
    )
    parser.add_argument("--cache-mb", type=float, default=default.mb, help="row cache MB")
    parser.add_argument(
        "--preload",
        action=argparse.BooleanOptionalAction,
        default=default.preload,
        help="fill the row cache from restores and the store once ready (PRELOAD)",
    )
    add_broker_option(parser)
    args = parser.parse_args()
    CACHE = CacheSettings(args.cache_rows, args.cache_mb, args.preload)
    asyncio.run(main(args.keys, args.partitions, args.broker, args.skip_worker, args.restores))
