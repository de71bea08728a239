"""Pull-query figures (``POST /query``, the inspector's filter box) over a RocksDB-backed table.

Fills a reference table's store through the loader's apply path (no broker), then times a
pull query end to end as the web view runs it — compile (parse, bind, a 1000-row sample to infer
the columns) plus execute — for a key lookup, and the scan rate of a filter that reads every row.

    .venv/bin/python -m bench.pull_query [--rows 200000]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from sql import compile_pull_query
from tables.spec import TableSpec
from tests.support.versioned import AppliedTable

BATCH = 10_000


def fill(path: Path, rows: int) -> AppliedTable:
    table = AppliedTable(path, TableSpec("users", "users", key_field="id"))
    for start in range(0, rows, BATCH):
        table.put_many(
            [
                (i, {"id": i, "name": f"user{i}", "tier": "gold" if i % 100 == 0 else "basic"}, 0)
                for i in range(start, min(rows, start + BATCH))
            ]
        )
    return table


def percentiles(samples: list[float]) -> tuple[float, float]:
    samples.sort()
    return samples[len(samples) // 2], samples[int(len(samples) * 0.99)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-pull-"))
    try:
        applied = fill(tmp / "users", args.rows)
        tables = {"users": applied.table}
        for label, cache in (("", None), (", columns cached (as the web does)", {})):
            lookups = []
            for i in range(500):
                sql = f"SELECT name, tier FROM users WHERE id = {(i * 7919) % args.rows}"
                t0 = time.perf_counter()
                result = compile_pull_query(sql, tables, cache).execute()
                lookups.append((time.perf_counter() - t0) * 1000)
                assert len(result.rows) == 1
            p50, p99 = percentiles(lookups)
            print(f"key lookup, compile + execute{label}: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
        sql = "SELECT id FROM users WHERE tier = 'gold' AND name <> ''"
        t0 = time.perf_counter()
        result = compile_pull_query(sql, tables).execute(max_rows=10_000, time_limit=600)
        elapsed = time.perf_counter() - t0
        assert result.scanned == args.rows
        print(
            f"full scan filter: {result.scanned:,} rows in {elapsed:.2f} s"
            f" = {result.scanned / elapsed:,.0f} rows/s, {len(result.rows):,} matched"
        )
        t0 = time.perf_counter()
        result = compile_pull_query("SELECT id FROM users", tables).execute(
            max_rows=args.rows, time_limit=2.0
        )
        print(
            f"within the web's 2 s time limit: {result.scanned:,} rows scanned"
            f" (stopped: {result.stopped})"
        )
        applied.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
