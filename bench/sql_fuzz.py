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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--inputs", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    pool = seeds()
    cat = catalog()
    counts: collections.Counter[str] = collections.Counter()
    bad: collections.Counter[str] = collections.Counter()
    examples: dict[str, str] = {}
    times: list[tuple[float, int]] = []
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
    for key, count in bad.most_common(20):
        print(f"  {count} x {key}\n      {examples[key]!r}")


if __name__ == "__main__":
    main()
