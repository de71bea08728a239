"""Apache Iceberg tables: the figures of docs/BENCHMARKS.md "Iceberg".

Writes an Iceberg table of ``--rows`` rows (pyiceberg's SQL catalog in sqlite, a local
warehouse; three snapshots: the rows, then two appends of 1 % more) under a temporary
directory, then prints:

- cold: the first lookup after start — catalog loaded, table metadata read, the current
  snapshot scanned and indexed — in ms (pyiceberg's import, once per process, apart);
- warm: ``get`` of a cached row (p50/p99 over 200,000 random keys), and one record through a
  compiled stream-table join;
- a join on a non-key column: the snapshot's hash index build time, a record through the
  index probe (p50/p99) against a scan of the snapshot per record (what it replaces);
- snapshot switch: a new snapshot committed, then ``refresh()`` (metadata polled, the snapshot
  loaded beside the served one, swapped in);
- the per-record ``FOR SYSTEM_TIME AS OF t.ts`` join across the three snapshots, through
  :class:`agents.process.BatchProcessor` (decode → join → encode) in batches of 10,000, events/s
  (the three snapshots loaded by a first pass, not timed).

    .venv/bin/python -m bench.iceberg [--rows 100000] [--events 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from agents.process import BatchProcessor
from bench.federation import typed_processor
from bench.pipeline_stages import Collect
from core import codec
from sources.iceberg import IcebergTable
from sql import compile_query, parse_script
from tables.kinds import TableEnv, table_kind
from tables.spec import TableSpec
from tests.support.iceberg import Lake
from tests.support.rocks import Record

COLUMNS = "symbol VARCHAR, volume BIGINT, px DOUBLE, PRIMARY KEY (symbol)"
STREAM = "CREATE STREAM trades (id BIGINT, symbol VARCHAR, ts BIGINT) WITH (topic='trades');\n"
BATCH = 10_000


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(p * len(s)))]


def write_table(lake: Lake, rows: int) -> list[int]:
    """The table with three snapshots; the snapshot log's times."""
    import pyarrow as pa

    cat = lake.catalog()
    cat.create_namespace("bench")
    schema = pa.schema([("symbol", pa.string()), ("volume", pa.int64()), ("px", pa.float64())])
    table = cat.create_table("bench.stats", schema=schema)

    def part(start: int, n: int) -> Any:
        return pa.table(
            {
                "symbol": [f"S{i}" for i in range(start, start + n)],
                "volume": list(range(start, start + n)),
                "px": [i / 100 for i in range(start, start + n)],
            },
            schema=schema,
        )

    table.append(part(0, rows))
    for k in range(2):
        time.sleep(0.01)
        table.append(part(rows + k * (rows // 100), rows // 100))
    table.refresh()
    return [e.timestamp_ms for e in table.metadata.snapshot_log]


def declaration(lake: Lake, extra: str = "") -> str:
    return f"CREATE TABLE stats ({COLUMNS}) WITH ({lake.options('bench.stats', extra)});\n"


def iceberg(sql: str) -> IcebergTable:
    decl = parse_script(sql + "SELECT 1 FROM s").declarations["stats"]
    spec = TableSpec.from_options(
        decl.name, decl.name, decl.primary_key, decl.options, decl.columns
    )
    table = table_kind(spec.name, spec.kind).create(spec, TableEnv())
    assert isinstance(table, IcebergTable)
    return table


def processor(sql: str, table: IcebergTable) -> BatchProcessor:
    return typed_processor(sql, {"stats": table}, "trades")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--events", type=int, default=200_000)
    args = ap.parse_args()
    rng = random.Random(7)
    started = time.perf_counter()
    # What a worker imports once, at its first Iceberg table: not part of a lookup's cost.
    import pyarrow.dataset
    import pyarrow.parquet
    import pyiceberg.catalog.sql
    import pyiceberg.io.pyarrow  # noqa: F401

    print(f"pyiceberg + pyarrow import (once per process): {time.perf_counter() - started:.3f} s")
    with tempfile.TemporaryDirectory() as tmp:
        lake = Lake(Path(tmp))
        times = write_table(lake, args.rows)
        rows = args.rows + 2 * (args.rows // 100)
        print(f"table: {args.rows:,} rows, 3 snapshots ({rows:,} rows in the last)")

        colds = []
        for _ in range(3):
            table = iceberg(declaration(lake))
            t0 = time.perf_counter()
            table.open_sync()
            assert table.get("S1") is not None
            colds.append(time.perf_counter() - t0)
            table.close_sync()
        print(
            f"cold first lookup (catalog + metadata + scan of {rows:,} rows): "
            f"first {colds[0] * 1000:.0f} ms, median of 3 {statistics.median(colds) * 1000:.0f} ms"
            " (the first also reads the files from disk)"
        )

        table = iceberg(declaration(lake, "refresh='snapshot', poll_interval='1h'"))
        table.open_sync()
        keys = [f"S{rng.randrange(rows)}" for _ in range(200_000)]
        get, clock = table.get, time.perf_counter_ns
        for k in keys:  # a row is built on its first read: warm means read once before
            get(k)
        samples = []
        for k in keys:
            t0 = clock()
            get(k)
            samples.append((clock() - t0) / 1000)
        print(f"warm get: p50 {pct(samples, 0.5):.2f} µs  p99 {pct(samples, 0.99):.2f} µs")
        sql = (
            declaration(lake)
            + STREAM
            + ("SELECT t.id, s.volume FROM trades t JOIN stats s ON s.symbol = t.symbol")
        )
        process = compile_query(sql, {"stats": table}).process
        per_record = []
        for i, k in enumerate(keys[:50_000]):
            rec = {"id": i, "symbol": k, "ts": 0}
            t0 = clock()
            process(rec)
            per_record.append((clock() - t0) / 1000)
        print(
            f"warm record through the join: p50 {pct(per_record, 0.5):.2f} µs"
            f"  p99 {pct(per_record, 0.99):.2f} µs"
        )

        # A join on a non-key column: a hash index of the snapshot (built once per snapshot)
        # against the scan per record it replaces (what EXPLAIN called FULL SCAN).
        sql = (
            declaration(lake)
            + STREAM.replace("ts BIGINT", "ts BIGINT, v BIGINT")
            + ("SELECT t.id, s.symbol FROM trades t JOIN stats s ON s.volume = t.v")
        )
        nonkey = compile_query(sql, {"stats": table})
        assert "index probe" in nonkey.explain()
        print(
            f"non-key index on volume: built in {table.last_index_ms:.0f} ms ({len(table):,} rows)"
        )
        probes = [rng.randrange(rows) for _ in range(20_000)]
        by_index, by_scan = [], []
        for i, v in enumerate(probes):
            rec = {"id": i, "symbol": "", "ts": 0, "v": v}
            t0 = clock()
            out = nonkey.process(rec)
            by_index.append((clock() - t0) / 1000)
            if i % 100 == 0:  # the scan: every row of the snapshot per record
                t0 = clock()
                scanned = [k for k, row in table.items() if row["volume"] == v]
                by_scan.append((clock() - t0) / 1000)
                assert len(scanned) == len(out)
        print(
            f"non-key join per record: index p50 {pct(by_index, 0.5):.2f} µs"
            f"  p99 {pct(by_index, 0.99):.2f} µs; a scan of the snapshot instead:"
            f" p50 {pct(by_scan, 0.5) / 1000:.1f} ms"
        )

        import pyarrow as pa

        ice = lake.catalog().load_table("bench.stats")
        ice.append(
            pa.table(
                {"symbol": ["NEW"], "volume": [1], "px": [0.5]}, schema=ice.schema().as_arrow()
            )
        )
        t0 = time.perf_counter()
        assert asyncio.run(table.refresh())
        switch = time.perf_counter() - t0
        assert table.get("NEW") is not None
        print(
            f"snapshot switch (poll + load of {len(table):,} rows + swap): "
            f"{switch * 1000:.0f} ms (of which the scan {table.last_load_ms:.0f} ms)"
        )
        table.close_sync()

        table = iceberg(declaration(lake))
        table.open_sync()
        sql = (
            declaration(lake)
            + STREAM
            + (
                "CREATE STREAM out WITH (topic='out') AS SELECT t.id, s.volume, s.px"
                " FROM trades t LEFT JOIN stats FOR SYSTEM_TIME AS OF t.ts AS s"
                " ON s.symbol = t.symbol EMIT CHANGES;"
            )
        )
        spans = [*times, times[-1] + 1000]
        recs = []
        for i in range(args.events):
            j = i % 3
            ts = rng.randrange(spans[j], spans[j + 1])
            recs.append(
                Record(
                    "trades",
                    0,
                    i,
                    ts,
                    None,
                    codec.dumps({"id": i, "symbol": f"S{rng.randrange(rows)}", "ts": ts}),
                )
            )
        for form in ("FOR SYSTEM_TIME AS OF t.ts", ""):
            p = processor(sql.replace("FOR SYSTEM_TIME AS OF t.ts", form), table)
            for i in range(0, len(recs), BATCH):  # loads the older snapshots once
                p.run(recs[i : i + BATCH], Collect())
            t0 = time.perf_counter()
            for i in range(0, len(recs), BATCH):
                p.run(recs[i : i + BATCH], Collect())
            rate = len(recs) / (time.perf_counter() - t0)
            stats = table.stats().as_dict()
            if form:
                print(
                    f"per-record AS OF join across 3 snapshots: {rate:,.0f} events/s"
                    f" ({stats['snapshot_loads']} snapshot loads in all)"
                )
            else:
                print(f"the same pipeline joining the current snapshot: {rate:,.0f} events/s")
        table.close_sync()


if __name__ == "__main__":
    main()
