"""SQL subquery figures (issue 3): per-record latency of compiled subqueries on a 1M-key table.

The reference table is the production one — a RocksDB-backed :class:`ReferenceTable` — filled
without a broker by the loader's own apply step (``tests/support/rocks.py``), then compacted as
the loader does after a bulk load. One thread, in-process. For each query it prints, from the same
run: our compiled plan (p50/p99 per record, records/s), the naive plan (every subquery scans the
table per record, as the seed's reference implementation does; measured on a few records on the
same table) and DuckDB answering the same query per record (the record as a one-row CTE, the
table in DuckDB with a PRIMARY KEY) and per 10k-record batch. Before timing, our rows are checked
against DuckDB's for a sample of records.

    .venv/bin/python -m bench.sql_subqueries [--keys 1000000] [--records 100000] [--memory]

``--memory`` runs the same queries on a MemoryTable (rows as Python dicts): the engine's own cost,
without RocksDB reads and JSON decoding.
"""

from __future__ import annotations

import argparse
import functools
import gc
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from sql import Catalog, CompiledQuery, compile_query
from tables.memory import MemoryTable
from tables.protocol import Table
from tables.spec import TableSpec
from tests.support.rocks import RocksFeeder

TIERS = ("basic", "gold", "silver", "bronze")
DECL = """CREATE TABLE users (id BIGINT, tier STRING, region BIGINT, price DECIMAL(10,2),
  active BOOLEAN, PRIMARY KEY (id)) WITH (topic='users');
CREATE STREAM orders (user_id BIGINT, region BIGINT, amount DECIMAL(10,2)) WITH (topic='orders');
"""
QUERIES: dict[str, tuple[str, str, float]] = {
    "a": (
        "key-lookup scalar subquery",
        "SELECT o.user_id, (SELECT u.price FROM users u WHERE u.id = o.user_id) AS price"
        " FROM orders o",
        5.0,
    ),
    "b": (
        "uncorrelated IN with a WHERE",
        "SELECT o.user_id, o.amount FROM orders o"
        " WHERE o.user_id IN (SELECT u.id FROM users u WHERE u.tier = 'gold')",
        10.0,
    ),
    "c": (
        "correlated EXISTS on a non-key column",
        "SELECT o.user_id, o.region FROM orders o"
        " WHERE EXISTS (SELECT 1 FROM users u WHERE u.region = o.region AND u.active)",
        10.0,
    ),
    "d": (
        "uncorrelated scalar MAX",
        "SELECT o.user_id, o.amount FROM orders o"
        " WHERE o.amount > (SELECT MAX(u.price) FROM users u WHERE u.active) - 500",
        10.0,
    ),
    "e": (
        "three subqueries and a join",
        "SELECT o.user_id, u.tier,"
        " (SELECT MAX(m.price) FROM users m WHERE m.active) AS top_price"
        " FROM orders o JOIN users u ON u.id = o.user_id"
        " WHERE o.user_id IN (SELECT g.id FROM users g WHERE g.tier = 'gold')"
        " AND NOT EXISTS (SELECT 1 FROM users r WHERE r.region = o.region AND r.price > o.amount)",
        50.0,
    ),
    "f": (
        "EXISTS over a join on keys (chained lookups)",
        "SELECT o.user_id, o.amount FROM orders o"
        " WHERE EXISTS (SELECT 1 FROM users u JOIN users v ON v.id = u.region"
        " WHERE u.id = o.user_id AND v.active)",
        10.0,
    ),
}
#: Queries without a naive figure: a naive join inside a subquery scans the table once per row
#: of the table (10^12 row visits on 1M keys), which no run finishes.
NO_NAIVE = frozenset("f")


def regions(keys: int) -> int:
    return max(1, keys // 5)  # about five rows per region value


def row(i: int, keys: int) -> dict[str, Any]:
    return {
        "id": i,
        "tier": TIERS[i % 4],
        "region": i % regions(keys),
        "price": Decimal((i * 7919) % 100_000).scaleb(-2),
        "active": i % 3 == 0,
    }


def records(keys: int, n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    hi_key, hi_region = keys + keys // 10, regions(keys) + regions(keys) // 10  # ~10% miss
    return [
        {
            "user_id": rng.randrange(hi_key),
            "region": rng.randrange(hi_region),
            "amount": Decimal(rng.randrange(100_000)).scaleb(-2),
        }
        for _ in range(n)
    ]


def build_table(keys: int, data_dir: Path) -> tuple[RocksFeeder, float]:
    t0 = time.perf_counter()
    feeder = RocksFeeder(TableSpec("users", "users", key_field="id"), data_dir)
    step = 50_000
    for lo in range(0, keys, step):
        feeder.apply((i, row(i, keys)) for i in range(lo, min(keys, lo + step)))
    feeder.table._state.store.compact()  # as the loader does after a bulk load
    return feeder, time.perf_counter() - t0


def build_duck(keys: int) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET scalar_subquery_error_on_multiple_rows=true")
    con.execute(
        "CREATE TABLE users (id BIGINT PRIMARY KEY, tier VARCHAR, region BIGINT,"
        " price DECIMAL(10,2), active BOOLEAN)"
    )
    con.execute(
        "INSERT INTO users SELECT i, ['basic','gold','silver','bronze'][i % 4 + 1],"
        f" i % {regions(keys)}, CAST(((i * 7919) % 100000) / 100.0 AS DECIMAL(10,2)), i % 3 = 0"
        f" FROM range({keys}) t(i)"
    )
    return con


def duck_one_row(query: str) -> str:
    cte = (
        "WITH orders AS (SELECT ?::BIGINT AS user_id, ?::BIGINT AS region,"
        " ?::DECIMAL(10,2) AS amount) "
    )
    return cte + query


def duck_row(con: Any, sql: str, r: dict[str, Any]) -> list[Any]:
    return list(con.execute(sql, duck_params(r)).fetchall())


def duck_params(r: dict[str, Any]) -> list[Any]:
    return [r["user_id"], r["region"], r["amount"]]


def ours(q: CompiledQuery, r: dict[str, Any]) -> list[tuple[Any, ...]]:
    return sorted(tuple(x.values()) for x in q.process(r))


def check_same(q: CompiledQuery, con: Any, query: str, sample: list[dict[str, Any]]) -> None:
    sql = duck_one_row(query)
    for r in sample:
        theirs = sorted(tuple(x) for x in con.execute(sql, duck_params(r)).fetchall())
        mine = ours(q, r)
        assert mine == theirs, (query, r, mine, theirs)


def latencies(fn: Callable[[dict[str, Any]], Any], recs: list[dict[str, Any]]) -> list[int]:
    clock = time.perf_counter_ns
    out = []
    for r in recs:
        t0 = clock()
        fn(r)
        out.append(clock() - t0)
    return out


def quietest(
    fn: Callable[[dict[str, Any]], Any], recs: list[dict[str, Any]], runs: int
) -> list[int]:
    """The run (of ``runs`` over the same records) with the lowest total time: on a shared
    machine the others mostly measure the neighbours. GC stays on, young objects only."""
    best: list[int] = []
    for _ in range(runs):
        gc.collect()
        gc.freeze()
        try:
            samples = latencies(fn, recs)
        finally:
            gc.unfreeze()
        if not best or sum(samples) < sum(best):
            best = samples
    return best


def pct(samples: list[int]) -> tuple[float, float]:
    s = sorted(samples)
    return s[len(s) // 2] / 1000, s[min(len(s) - 1, int(len(s) * 0.99))] / 1000


def duck_batch(con: Any, query: str, recs: list[dict[str, Any]], batch: int) -> float:
    """µs per record when DuckDB answers the query for ``batch`` records at once (median of 3)."""
    con.execute(
        "CREATE OR REPLACE TABLE orders (user_id BIGINT, region BIGINT, amount DECIMAL(10,2))"
    )
    values = ",".join(f"({r['user_id']},{r['region']},{r['amount']})" for r in recs[:batch])
    con.execute(f"INSERT INTO orders VALUES {values}")
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        con.execute(query).fetchall()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) / batch * 1e6


def fmt(us: float) -> str:
    if us != us:  # NaN: not measured
        return "—"
    if us >= 1e6:
        return f"{us / 1e6:.2f} s"
    if us >= 1e3:
        return f"{us / 1e3:.1f} ms"
    return f"{us:.2f} µs"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keys", type=int, default=1_000_000, help="rows in the users table")
    ap.add_argument("--records", type=int, default=100_000, help="stream records per query")
    ap.add_argument("--naive-records", type=int, default=3, help="records for the naive plan")
    ap.add_argument("--duck-records", type=int, default=200, help="records for DuckDB per row")
    ap.add_argument("--batch", type=int, default=10_000, help="DuckDB batch size")
    ap.add_argument("--only", default="abcde", help="which queries, e.g. 'ac'")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs; the quietest is shown")
    ap.add_argument(
        "--memory", action="store_true", help="a MemoryTable instead of RocksDB (engine cost only)"
    )
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-sql-"))
    try:
        feeder: RocksFeeder | None = None
        table: Table
        if args.memory:
            t0 = time.perf_counter()
            table = MemoryTable("users", key_field="id")
            for i in range(args.keys):
                table.put_row(row(i, args.keys))
            secs = time.perf_counter() - t0
            print(f"setup: {args.keys:,} rows into a MemoryTable (no storage cost) in {secs:.1f}s")
        else:
            feeder, secs = build_table(args.keys, work)
            table = feeder.table
            print(f"setup: {args.keys:,} rows into RocksDB (ReferenceTable store) in {secs:.1f}s")
        con = build_duck(args.keys)
        recs = records(args.keys, args.records, seed=1)
        warm = records(args.keys, min(args.records, 20_000), seed=2)
        catalog = Catalog.of({"users": table})
        # The storage floor of a key lookup, same run: RocksDB point read + JSON decode.
        for r in warm:
            table.get(r["user_id"])
        floor = quietest(lambda r: table.get(r["user_id"]), recs, args.repeat)
        f50, f99 = pct(floor)
        print(f"floor: table.get() p50 {fmt(f50)}, p99 {fmt(f99)} (same keys as (a))")
        header = (
            f"{'query':<42} {'ours p50':>10} {'ours p99':>10} {'records/s':>11} {'goal p99':>9}"
            f" {'naive/rec':>10} {'duck/rec':>10} {'duck/rec@10k':>12}"
        )
        print(header)
        print("-" * len(header))
        for name in args.only:
            title, query, goal = QUERIES[name]
            t0 = time.perf_counter()
            q = compile_query(DECL + query, catalog)
            compile_s = time.perf_counter() - t0
            check_same(q, con, query, recs[:100])
            for r in warm:  # warm the block cache and the code paths
                q.process(r)
            samples = quietest(q.process, recs, args.repeat)
            p50, p99 = pct(samples)
            rate = len(samples) / (sum(samples) / 1e9)
            naive = float("nan")
            if name not in NO_NAIVE:
                # Every subquery planned as a per-record scan (the seed's reference behaviour).
                nq = compile_query(DECL + query, catalog, rules=("full_scan",))
                check_same(nq, con, query, recs[: min(2, args.naive_records)])
                naive = statistics.median(latencies(nq.process, recs[: args.naive_records])) / 1000
                nq.close()
            dsql = duck_one_row(query)
            dsamples = latencies(functools.partial(duck_row, con, dsql), recs[: args.duck_records])
            d_rec = statistics.median(dsamples) / 1000
            d_batch = duck_batch(con, query, recs, args.batch)
            ok = "✓" if p99 <= goal else "✗"
            print(
                f"({name}) {title:<38} {fmt(p50):>10} {fmt(p99):>10} {rate:>11,.0f}"
                f" {f'{goal:g} µs {ok}':>9} {fmt(naive):>10} {fmt(d_rec):>10} {fmt(d_batch):>12}"
            )
            print("    plan: " + q.explain().replace("\n", "\n          "))
            print(f"    compile (builds indexes / maintained results): {compile_s:.2f}s")
            q.close()
        print(
            f"\nnaive = every subquery scans the table per record (median of"
            f" {args.naive_records} records on the same {args.keys:,}-row table);"
            f" duck/rec = DuckDB, record as a one-row CTE (median of {args.duck_records});"
            f" duck/rec@10k = one DuckDB query over a {args.batch:,}-record table, per record;"
            f" ours and floor: the quietest of {args.repeat} timed runs over {args.records:,}"
            " records."
        )
        if feeder is not None:
            feeder.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
