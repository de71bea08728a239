"""Windowed aggregates (issue 4): records/s through a compiled query, in-process, one thread.

Same records (1,000 keys, event time advancing 5 ms per record, 5% of records out of order by up
to 1 s) through a plain GROUP BY and through tumbling, hopping and session windows, EMIT CHANGES
and EMIT FINAL, in one run of short interleaved rounds, the best round of each: load spikes from
other processes hit every query alike, so the ratios to the plain GROUP BY hold on a noisy
machine. Also with ``dirty_state()`` called once per 1,000-record batch (what the agent persists).

    .venv/bin/python -m bench.sql_windows [--records 20000] [--rounds 10]
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from typing import Any

from sql import Catalog, LateRecordError, compile_query

DECL = (
    "CREATE STREAM ev (k VARCHAR, ts BIGINT, v DECIMAL(10,2)) "
    "WITH (topic='ev', timestamp='ts', out_of_orderness='1s');\n"
)
AGG = "SELECT k, COUNT(*) AS n, SUM(v) AS total, MAX(v) AS top FROM ev"
QUERIES = {
    "plain GROUP BY (baseline)": f"{AGG} GROUP BY k EMIT CHANGES",
    "TUMBLING(5s) EMIT CHANGES": f"{AGG} WINDOW TUMBLING(5s) GROUP BY k EMIT CHANGES",
    "TUMBLING(5s) EMIT FINAL": f"{AGG} WINDOW TUMBLING(5s) GROUP BY k EMIT FINAL",
    "HOPPING(10s, 5s) EMIT FINAL": f"{AGG} WINDOW HOPPING(10s, 5s) GROUP BY k EMIT FINAL",
    "SESSION(2s) EMIT CHANGES": f"{AGG} WINDOW SESSION(2s) GROUP BY k EMIT CHANGES",
    "SESSION(2s) EMIT FINAL": f"{AGG} WINDOW SESSION(2s) GROUP BY k EMIT FINAL",
}
BATCH = 1000


def records(n: int) -> list[dict[str, Any]]:
    from decimal import Decimal

    rng = random.Random(7)
    out = []
    for i in range(n):
        ts = i * 5 - (rng.randrange(1000) if rng.random() < 0.05 else 0)
        out.append(
            {"k": f"u{rng.randrange(1000)}", "ts": ts, "v": Decimal(rng.randrange(10_000)) / 100}
        )
    return out


def measure(query: str, recs: list[dict[str, Any]], persist: bool) -> tuple[float, int, int]:
    q = compile_query(DECL + query, Catalog())
    process, dirty = q.process, q.dirty_state
    rows = late = 0
    gc.collect()
    start = time.perf_counter()
    for i, r in enumerate(recs):
        try:
            rows += len(process(r))
        except LateRecordError:
            late += 1
        if persist and i % BATCH == BATCH - 1:
            dirty()
    rows += len(q.finish())
    return len(recs) / (time.perf_counter() - start), rows, late


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=10)
    args = p.parse_args()
    recs = records(args.records)
    best: dict[tuple[str, bool], float] = {}
    counts: dict[str, tuple[int, int]] = {}
    for _ in range(args.rounds):  # interleaved rounds, best of each: load spikes hit all alike
        for name, query in QUERIES.items():
            for persist in (False, True):
                rate, rows, late = measure(query, recs, persist)
                best[(name, persist)] = max(rate, best.get((name, persist), 0.0))
                counts[name] = (rows, late)
    base = best[(next(iter(QUERIES)), False)]
    print(
        f"{args.records} records, 1000 keys, best of {args.rounds} interleaved rounds;"
        " records/s (ratio to the plain GROUP BY)"
    )
    for name in QUERIES:
        rate, with_state = best[(name, False)], best[(name, True)]
        rows, late = counts[name]
        print(
            f"  {name:28s} {rate / 1000:7.1f}k/s ({rate / base:4.2f}x)"
            f"  +dirty_state per {BATCH}: {with_state / 1000:7.1f}k/s"
            f"  rows {rows}, late {late}"
        )


if __name__ == "__main__":
    main()
