"""The compiler's fuzz campaign (issue 11): N mutated queries, counted by outcome.

Every input must compile or raise the project's error with a line and column; anything else is
counted as ``bad`` and its first examples printed. Compile times are reported too (the slowest
inputs and how many took over 2 s), since bounded compile time is part of the contract. The
suite runs the same mutations, capped, as a hypothesis test (tests/unit/sql/test_fuzz.py).

    .venv/bin/python -m bench.sql_fuzz [--inputs 20000] [--seed 1]
"""

from __future__ import annotations

import argparse
import collections
import random
import signal
import time
from typing import Any

from tests.support.sql_fuzz import Outcome, catalog, mutate, outcome, seeds

HANG_SECONDS = 30


class _Hang(Exception):
    pass


def _alarm(*_: Any) -> None:
    raise _Hang


#: Large inputs within the limits, compiled alone (best of 3): compile time grows ~linearly.
SIZES = {
    "IN list, 20,000 items": "SELECT order_id FROM orders WHERE order_id IN ({})".format(
        ", ".join(str(i) for i in range(20_000))
    ),
    "OR chain, 5,000 terms": "SELECT order_id FROM orders WHERE "
    + " OR ".join(f"qty = {i}" for i in range(5_000)),
    "parentheses 40 deep": "SELECT order_id, " + "(" * 40 + "qty" + ")" * 40 + " AS q FROM orders",
    "NOT 140 deep": "SELECT order_id FROM orders WHERE " + "NOT " * 140 + "TRUE",
}


def sizes() -> None:
    cat = catalog()
    for name, sql in SIZES.items():
        best = min(outcome(sql, cat).seconds for _ in range(3))
        kind = outcome(sql, cat).kind
        print(f"  {name:24} {len(sql):8,} chars  {kind:5}  {best:.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--inputs", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sizes-only", action="store_true", help="only the large-input timings")
    args = ap.parse_args()
    print("large inputs (compile time, best of 3):")
    sizes()
    if args.sizes_only:
        return
    rng = random.Random(args.seed)
    pool = seeds()
    cat = catalog()
    counts: collections.Counter[str] = collections.Counter()
    bad: collections.Counter[str] = collections.Counter()
    examples: dict[str, str] = {}
    times: list[tuple[float, int]] = []
    slowest = (0.0, "")
    signal.signal(signal.SIGALRM, _alarm)
    started = time.perf_counter()
    for i in range(args.inputs):
        sql = mutate(rng.choice(pool), rng)
        signal.alarm(HANG_SECONDS)
        try:
            result = outcome(sql, cat)
        except _Hang:
            result = Outcome("hang", float(HANG_SECONDS))
        finally:
            signal.alarm(0)
        counts[result.kind] += 1
        times.append((result.seconds, len(sql)))
        if result.seconds > slowest[0]:
            slowest = (result.seconds, sql)
        if result.kind in ("bad", "hang"):
            key = f"{type(result.error).__name__}: {str(result.error).splitlines()[0][:100]}"
            bad[key] += 1
            examples.setdefault(key, sql[:300])
        if (i + 1) % 1000 == 0:
            print(f"{i + 1} inputs, {dict(counts)}", flush=True)
    elapsed = time.perf_counter() - started
    times.sort()
    n = len(times)
    print(f"\n{n} inputs in {elapsed:.0f} s (seed {args.seed})")
    for kind in ("ok", "typed", "bad", "hang"):
        print(f"  {kind:6} {counts[kind]:6}  {100 * counts[kind] / n:5.1f} %")
    print(
        f"compile time: median {1000 * times[n // 2][0]:.1f} ms, "
        f"p99 {1000 * times[int(n * 0.99)][0]:.0f} ms, max {times[-1][0]:.2f} s "
        f"({times[-1][1]:,} chars); over 2 s: {sum(1 for t, _ in times if t > 2)}"
    )
    print(f"slowest input ({slowest[0]:.2f} s): {slowest[1][:200]!r}")
    for key, count in bad.most_common(20):
        print(f"  {count} x {key}\n      {examples[key]!r}")


if __name__ == "__main__":
    main()
