"""ClickHouse tables: the figures of docs/BENCHMARKS.md "Federation: ClickHouse".

Fills a ``customers`` table of ``--rows`` rows (``id Int64, tier, credit Decimal(12,2),
country``, ordered by ``id``) in the embedded engine (chdb, a temporary session path) and in a
throwaway server (tests/support/clickhouse.py: Debian's 18.16 here, over HTTP), then prints per
mode:

- the batched lookup: a batch's prefetch of 100 / 1,000 / 10,000 distinct uncached keys (one
  ``IN (...)`` query each, cache='none' so every batch goes to ClickHouse), in keys/s and
  µs/key (the median of ``--repeat`` batches, each of fresh random keys);
- an uncached single-key round trip (the floor of any fetch), p50/p99;
- a cached ``get`` (the partial cache, what every record of a batch reads), p50.

    .venv/bin/python -m bench.clickhouse [--rows 1000000] [--repeat 7] [--mode chdb|server|both]
                                         [--granularity 8192]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path

from sources.clickhouse_client import EmbeddedClient
from sources.lookup import LookupTable
from tests.support.clickhouse import clickhouse_server, ensure_installed
from tests.support.federation import declaration, external

DDL = "id Int64, tier String, credit Decimal(12, 2), country Nullable(String)"
FILL = (
    "INSERT INTO {table} SELECT number + 1, ['gold', 'basic', 'silver'][1 + number % 3],"
    " toDecimal64(number % 10000, 2) / 100, if(number % 7 = 0, NULL, 'FR')"
    " FROM system.numbers LIMIT {rows}"
)
SIZES = (100, 1_000, 10_000)


def lookup(where: str, cache: str) -> LookupTable:
    table = external(declaration("customers", f"{where}, cache='{cache}'"), "customers")
    assert isinstance(table, LookupTable)
    return table


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(p * len(s)))]


def bench_mode(name: str, where: str, rows: int, repeat: int) -> None:
    rng = random.Random(7)
    table = lookup(where, "none")
    try:
        asyncio.run(table.prefetch(None, [1]))  # warm: connection, first query
        for size in SIZES:
            times = []
            for _ in range(repeat):
                keys = rng.sample(range(1, rows + 1), size)
                started = time.perf_counter()
                asyncio.run(table.prefetch(None, keys))
                times.append(time.perf_counter() - started)
                assert table.get(keys[0]) is not None
            t = statistics.median(times)
            print(
                f"{name:<8} batch of {size:>6,} keys: {size / t:>10,.0f} keys/s"
                f"  {t / size * 1e6:8.1f} µs/key  ({t * 1000:7.1f} ms a batch, one query)"
            )
        singles = []
        for _ in range(max(50, repeat * 10)):
            key = rng.randint(1, rows)
            started = time.perf_counter()
            asyncio.run(table.prefetch(None, [key]))
            singles.append(time.perf_counter() - started)
        print(
            f"{name:<8} single-key round trip:     p50 {pct(singles, 0.5) * 1000:7.2f} ms"
            f"  p99 {pct(singles, 0.99) * 1000:7.2f} ms"
        )
        stats = table.stats().as_dict()
        assert stats["single_fetches"] == 0
    finally:
        table.close_sync()
    cached = lookup(where, "partial")
    try:
        keys = list(range(1, 1001))
        asyncio.run(cached.prefetch(None, keys))
        gets = []
        for k in keys * 20:
            started = time.perf_counter()
            cached.get(k)
            gets.append(time.perf_counter() - started)
        print(f"{name:<8} cached get (partial cache): p50 {pct(gets, 0.5) * 1e6:7.2f} µs")
    finally:
        cached.close_sync()


def settings(args: argparse.Namespace) -> str:
    """MergeTree reads whole granules (8,192 rows by default): a point lookup reads one, so a
    batch of random keys reads most of a large table; a lookup table wants small granules."""
    return f" SETTINGS index_granularity = {args.granularity}"


def main(args: argparse.Namespace) -> None:
    if args.mode in ("chdb", "both"):
        with tempfile.TemporaryDirectory(prefix="bench-chdb-") as tmp:
            path = Path(tmp) / "session"
            client = EmbeddedClient(str(path))
            client.open()
            try:
                started = time.perf_counter()
                client.run("CREATE DATABASE crm")
                engine = f"ENGINE = MergeTree ORDER BY id{settings(args)}"
                client.run(f"CREATE TABLE crm.customers ({DDL}) {engine}")
                client.run(FILL.format(table="crm.customers", rows=args.rows))
                print(
                    f"chdb     filled {args.rows:,} rows in {time.perf_counter() - started:.1f} s"
                )
            finally:
                client.close()
            where = f"connector='clickhouse', path='{path}', table='crm.customers'"
            bench_mode("chdb", where, args.rows, args.repeat)
    if args.mode in ("server", "both"):
        ensure_installed()
        with clickhouse_server() as server:
            started = time.perf_counter()
            server.execute(
                f"CREATE TABLE customers ({DDL}) ENGINE = MergeTree ORDER BY id{settings(args)}"
            )
            server.execute(FILL.format(table="customers", rows=args.rows))
            print(
                f"server   {server.version}: filled {args.rows:,} rows"
                f" in {time.perf_counter() - started:.1f} s"
            )
            where = f"connector='clickhouse', url='{server.url()}', table='customers'"
            bench_mode("server", where, args.rows, args.repeat)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--mode", choices=("chdb", "server", "both"), default="both")
    parser.add_argument("--granularity", type=int, default=8192, help="MergeTree index_granularity")
    main(parser.parse_args())
