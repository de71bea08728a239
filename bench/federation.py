"""External tables (PostgreSQL, DuckDB): the figures of docs/BENCHMARKS.md "Federation".

Starts a throwaway PostgreSQL cluster (tests/support/postgres.py) and writes a DuckDB file, each
with a ``customers`` table of ``--rows`` rows, then prints per source:

- the cached lookup inside a compiled query: p50/p99 of one record through a stream-table join
  whose row is in the partial cache (and of the bare ``get``);
- an uncached single-key round trip (p50/p99; the per-record fallback, and the floor of any
  fetch);
- the batched fetch: cost per key when a batch brings 100 / 1,000 / 10,000 distinct uncached keys
  (one ``= ANY($1)`` query each);
- a pipeline (decode → prefetch → join → encode, :class:`agents.process.BatchProcessor` over
  in-memory records, batches of 10,000) joining a stream with the table at 90 % and 0 % cache
  hit ratio, in events/s, next to the same pipeline over a Kafka-kind table (RocksDB behind the
  agents' row cache) holding the same rows.

    .venv/bin/python -m bench.federation [--rows 1000000] [--events 100000]
        [--sources postgres,duckdb] [--no-pipelines]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

from agents.cache import CachedTable
from agents.codec import make_decoder, make_encoder
from agents.process import BatchProcessor
from bench.pipeline_stages import Collect
from core import codec
from sources.lookup import LookupTable
from sql import compile_query, parse_script
from tests.support.federation import declaration, external
from tests.support.postgres import PostgresCluster, postgres_cluster
from tests.support.rocks import Record

QUERY = (
    "CREATE STREAM orders (order_id BIGINT, customer_id BIGINT, amount DECIMAL(10,2))"
    " WITH (topic='orders');\n"
    "CREATE STREAM out WITH (topic='out') AS SELECT o.order_id, c.tier, o.amount + c.credit AS t"
    " FROM orders o JOIN customers c ON c.id = o.customer_id EMIT CHANGES;"
)
BATCH = 10_000
#: One event loop for every fetch, as a worker has (``asyncio.run`` per call would add a new
#: loop and a new thread for ``to_thread`` to every figure).
LOOP = asyncio.new_event_loop()


def run(coro: Any) -> Any:
    return LOOP.run_until_complete(coro)


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(p * len(s)))]


def us(x: float) -> str:
    return f"{x * 1e6:8.1f} µs"


def show(what: str, samples: list[float]) -> None:
    print(f"{what + ':':<40} p50 {us(pct(samples, 0.5))}  p99 {us(pct(samples, 0.99))}")


def fill_postgres(pg: PostgresCluster, rows: int) -> None:
    pg.execute(
        "CREATE TABLE customers (id bigint PRIMARY KEY, tier text, credit numeric(12,2),"
        " country text)"
    )
    pg.execute(
        "INSERT INTO customers SELECT g, (ARRAY['gold','basic','silver'])[1 + g %% 3],"
        " (g %% 10000) / 100.0, 'FR' FROM generate_series(1, %s) g",
        [rows],
    )
    pg.execute("ANALYZE customers")


def fill_duckdb(path: Path, rows: int) -> None:
    import duckdb

    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE customers AS SELECT g::BIGINT AS id,"
        " (['gold','basic','silver'])[1 + g % 3] AS tier,"
        " ((g % 10000) / 100.0)::DECIMAL(12,2) AS credit, 'FR' AS country"
        " FROM range(1, ? + 1) t(g)",
        [rows],
    )
    con.execute("ALTER TABLE customers ADD PRIMARY KEY (id)")
    con.close()


def lookup_table(options: str) -> LookupTable:
    table = external(declaration("customers", options), "customers")
    assert isinstance(table, LookupTable)
    return table


def processor(tables: dict[str, Any]) -> BatchProcessor:
    return typed_processor(declaration("customers", "topic='customers'") + QUERY, tables, "orders")


def typed_processor(sql: str, tables: dict[str, Any], stream: str) -> BatchProcessor:
    """The query of ``sql`` over ``tables`` as a worker runs it, ``stream``'s declared columns
    decoded typed (sink ``out``, dead letters ``dlq``)."""
    query = compile_query(sql, tables, typed_streams=True)
    decl = parse_script(sql).declarations[stream]
    return BatchProcessor(
        query,
        make_decoder(decl.columns),
        name="out",
        sink_topic="out",
        key_columns=(),
        dead_letter_topic="dlq",
        encode=make_encoder(query.output_columns, query.output_types),
    )


def records(keys: list[int]) -> list[Record]:
    return [
        Record(
            "orders",
            0,
            i,
            0,
            None,
            codec.dumps({"order_id": i, "customer_id": k, "amount": "1.50"}),
        )
        for i, k in enumerate(keys)
    ]


class _Tp:
    topic, partition = "orders", 0


def run_pipeline(p: BatchProcessor, recs: list[Record]) -> float:
    """Events/s through prefetch (when the query has one) + run, in batches of BATCH."""
    tp = _Tp()
    started = time.perf_counter()
    for i in range(0, len(recs), BATCH):
        batch = recs[i : i + BATCH]
        if p.prefetch is not None:
            run(p.prefetch({tp: batch}))
        p.run(batch, Collect())
    return len(recs) / (time.perf_counter() - started)


def bench_source(
    name: str, options: str, rows: int, events: int, kafka_rate: float, pipelines: bool = True
) -> None:
    rng = random.Random(7)
    print(f"\n== {name}")
    table = lookup_table(options + ", cache='partial', cache_max_rows='2000000'")
    try:
        # Cached lookups: one record through the join, its row in the cache.
        p = processor({"customers": table})
        query = p.query
        hot = [rng.randint(1, rows) for _ in range(1000)]
        run(table.prefetch(None, hot))
        process = query.process
        samples, gets = [], []
        for i in range(20_000):
            value = {
                "order_id": i,
                "customer_id": hot[i % 1000],
                "amount": codec.loads_exact("1.50"),
            }
            t0 = time.perf_counter()
            process(value)
            t1 = time.perf_counter()
            table.get(hot[(i * 7) % 1000])
            t2 = time.perf_counter()
            samples.append(t1 - t0)
            gets.append(t2 - t1)
        show("cached, one record through the join", samples)
        show("cached, table.get alone", gets)
        # Uncached single-key round trips.
        trips = []
        for _ in range(300):
            k = rng.randint(1, rows)
            t0 = time.perf_counter()
            table.caller.call(partial(table._fetch, None, [k]), 1)
            trips.append(time.perf_counter() - t0)
        show("uncached single-key round trip", trips)
        # Batched fetches of distinct uncached keys.
        for n in (100, 1_000, 10_000):
            costs = []
            for _ in range(11):  # the median of 11: a shared machine's database time varies
                keys = rng.sample(range(1, rows + 1), n)
                table._cache.clear()
                t0 = time.perf_counter()
                run(table.prefetch(None, keys))
                costs.append((time.perf_counter() - t0) / n)
            print(f"batched fetch, {n:>6} keys/batch:     {us(statistics.median(costs))} per key")
    finally:
        table.close_sync()
    for hit in (0.9, 0.0) if pipelines else ():
        table = lookup_table(options + ", cache='partial', cache_max_rows='2000000'")
        try:
            warm = rng.sample(range(1, rows + 1), 10_000)
            run(table.prefetch(None, warm))
            keys = [
                rng.choice(warm) if rng.random() < hit else rng.randint(1, rows)
                for _ in range(events)
            ]
            rate = run_pipeline(processor({"customers": table}), records(keys))
            stats = table.stats().as_dict()
            fetched = stats["round_trips"] * (stats["keys_per_round_trip"] or 0)
            print(
                f"pipeline at {hit:.0%} hits: {rate:>10,.0f} events/s"
                f" ({rate / kafka_rate:.0%} of the Kafka-kind table; {fetched / events:.0%} of"
                f" the events' keys fetched, {stats['round_trips']} round trips)"
            )
        finally:
            table.close_sync()


def credit(i: int) -> Any:
    return codec.loads_exact(f"{i % 10000 / 100:.2f}")


def kafka_pipeline(rows: int, events: int) -> float:
    """The same pipeline over a RocksDB-backed table (the agents' row cache in front)."""
    from tables.spec import TableSpec
    from tests.support.rocks import RocksFeeder

    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        spec = TableSpec("customers", "customers", "id", exact_decimals=True)
        feeder = RocksFeeder(spec, Path(tmp))
        try:
            for start in range(1, rows + 1, 50_000):
                feeder.apply(
                    (
                        i,
                        {
                            "id": i,
                            "tier": "gold",
                            "credit": credit(i),
                            "country": "FR",
                        },
                    )
                    for i in range(start, min(rows + 1, start + 50_000))
                )
            warm = rng.sample(range(1, rows + 1), 10_000)
            keys = [
                rng.choice(warm) if rng.random() < 0.9 else rng.randint(1, rows)
                for _ in range(events)
            ]
            p = processor({"customers": CachedTable(feeder.table)})
            run_pipeline(p, records(keys[: events // 10]))  # the row cache warmed, as in a worker
            rate = run_pipeline(p, records(keys))
        finally:
            feeder.close()
    print(f"== Kafka-kind table (RocksDB + row cache), 90 % repeated keys: {rate:,.0f} events/s")
    return rate


def main(args: argparse.Namespace) -> None:
    only = set(args.sources.split(","))
    kafka_rate = kafka_pipeline(args.rows, args.events) if args.pipelines else 1.0
    if "postgres" in only:
        with postgres_cluster() as pg:
            fill_postgres(pg, args.rows)
            bench_source(
                f"PostgreSQL 15, {args.rows:,} rows",
                f"connector='postgres', dsn='{pg.dsn()}', table='public.customers'",
                args.rows,
                args.events,
                kafka_rate,
                args.pipelines,
            )
    if "duckdb" in only:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "crm.duckdb"
            fill_duckdb(path, args.rows)
            bench_source(
                f"DuckDB, {args.rows:,} rows",
                f"connector='duckdb', path='{path}', table='customers'",
                args.rows,
                args.events,
                kafka_rate,
                args.pipelines,
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--sources", default="postgres,duckdb", help="comma-separated")
    parser.add_argument(
        "--no-pipelines", dest="pipelines", action="store_false", help="lookups and fetches only"
    )
    main(parser.parse_args())
