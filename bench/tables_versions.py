"""Versioned-table figures, through the loader's apply path into RocksDB (no broker).

Writes ``--keys`` keys x ``--versions`` versions (rounds of updates with rising event
timestamps, batches of 10k records as the loader applies them) into a versioned table and the
same records into a plain table, in the same run; then measures ``get_as_of()`` latency at random
(key, time) probes and the disk bytes per version after compaction.

    .venv/bin/python -m bench.tables_versions [--keys 1000000] [--versions 10] [--rounds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from core import codec
from tables.apply import Applier
from tables.reference import ReferenceTable
from tables.spec import TableSpec
from tests.support.rocks import Record

BATCH = 10_000
ROUND_MS = 60_000
PROBES = 200_000


def records(keys: int, versions: int, seed: int = 7) -> Iterator[list[Record]]:
    """Batches: round r updates every key (in shuffled order) at about ``r * ROUND_MS``.

    Generated lazily (10M records do not fit in memory as objects); same seed, same records.
    """
    rng = random.Random(seed)
    order = list(range(keys))
    batch: list[Record] = []
    offset = 0
    for r in range(versions):
        rng.shuffle(order)
        for i in order:
            ts = r * ROUND_MS + rng.randrange(ROUND_MS)
            value = {"sku": f"sku-{i}", "price": round(1 + (i * 7 + r) % 997 / 10, 2), "round": r}
            batch.append(Record("prices", 0, offset, ts, f"sku-{i}".encode(), codec.dumps(value)))
            offset += 1
            if len(batch) == BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


def load(table: ReferenceTable, batches: Iterator[list[Record]]) -> float:
    """Seconds spent applying and committing (record generation not counted)."""
    state = table._state
    state.store.open()
    applier = Applier(table.spec.key_field, state.decode, state.versions)
    gc.collect()
    elapsed = 0.0
    for batch in batches:
        start = time.perf_counter()
        wb = state.batch()
        applier.apply(batch, state.store, wb, want_changes=False)
        state.commit(wb)
        elapsed += time.perf_counter() - start
    state.store.compact()  # what the loader does once a bulk load is ready
    return elapsed


def sst_bytes(table: ReferenceTable) -> int:
    """Bytes of the store's SST files (compacted data; WAL and logs left out)."""
    return sum(f.stat().st_size for f in table._state.store.path.glob("*.sst"))


def percentiles(samples: list[int]) -> tuple[float, float]:
    samples.sort()
    return samples[len(samples) // 2] / 1000, samples[int(len(samples) * 0.99)] / 1000


async def as_of_latency(
    table: ReferenceTable, keys: int, versions: int
) -> dict[str, tuple[float, float]]:
    """Timed under an event loop, as a worker reads: a key's first read into the past is
    answered by the seek and its history loaded after it (tables/versions_cache.py); the
    cached figure waits for those loads after its warm-up."""
    rng = random.Random(11)
    probes = [
        (f"sku-{rng.randrange(keys)}", rng.randrange(versions * ROUND_MS)) for _ in range(PROBES)
    ]
    versions_store = table._state.versions
    assert versions_store is not None
    decode = table._state.decode_stored
    past = versions_store.past

    def seek_decode(k: str, t: int) -> object:
        raw = versions_store.seek(k.encode(), t)
        return raw if raw is None or not isinstance(raw, bytes) else decode(raw)

    def cold(k: str, t: int) -> object:
        return table.get_as_of(k, t)

    def load_history(k: str, t: int) -> object:
        return versions_store._read_past(k.encode())

    # A stream join mostly asks for "now": a time after the key's latest version.
    recent = [(k, versions * ROUND_MS + t % ROUND_MS) for k, t in probes]
    out: dict[str, tuple[float, float]] = {}
    clock = time.perf_counter_ns
    for label, fn, sample in (
        ("get_as_of past (cached)", table.get_as_of, probes),
        ("get_as_of past, 1st of key", cold, probes),
        ("history load (after 1st)", load_history, probes),
        ("seek + decode (no cache)", seek_decode, probes),
        ("as_of raw (no decode)", lambda k, t: versions_store.as_of(k.encode(), t), probes),
        ("get_as_of, after latest", table.get_as_of, recent),
        ("seek only, after latest", lambda k, t: versions_store.seek(k.encode(), t), recent),
        ("get (latest, for scale)", lambda k, t: table.get(k), probes),
    ):
        # Warm the block cache and the code path; the cached figure reads every key's past
        # once first (the steady state of readers that come back to their keys; the first
        # read of a key is the "1st of key" figure).
        for k, t in sample if label == "get_as_of past (cached)" else sample[:20_000]:
            fn(k, t)
        if label == "get_as_of past (cached)":
            loading = bool(past.pending)
            while loading:  # the histories the warm-up's first reads left to load
                await asyncio.sleep(0)
                loading = bool(past.pending)
            for k, t in sample:  # read again: the versions these probes ask for decoded
                fn(k, t)
            print(
                f"  past-version cache after the warm-up: {len(past):,} keys, "
                f"{past.held:,} versions"
            )
        samples = []
        for k, t in sample:
            if fn is cold:
                past.clear()  # every read a key's first: answered by the seek
            t0 = clock()
            fn(k, t)
            samples.append(clock() - t0)
        out[label] = percentiles(samples)
        past.pending.clear()
    return out


def main(keys: int, versions: int, rounds: int) -> None:
    total = keys * versions
    print(f"{keys:,} keys x {versions} versions = {total:,} records, batches of {BATCH:,}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-versions-"))
    try:
        plain = ReferenceTable(TableSpec("plain", "prices", key_field="sku"), tmp, "-")
        versioned = ReferenceTable(
            TableSpec("versioned", "prices", key_field="sku", versions=versions), tmp, "-"
        )
        t_plain = load(plain, records(keys, versions))
        t_vers = load(versioned, records(keys, versions))
        print(f"write, plain table:     {t_plain:7.1f} s  {total / t_plain:>9,.0f} records/s")
        print(f"write, versioned table: {t_vers:7.1f} s  {total / t_vers:>9,.0f} records/s")
        print(f"write cost ratio versioned/plain: {t_vers / t_plain:.2f}x (same run)")
        stored = sum(
            len(versioned.history(f"sku-{i}")) for i in range(0, keys, max(1, keys // 1000))
        )
        sampled = len(range(0, keys, max(1, keys // 1000)))
        print(f"versions per key (sampled): {stored / sampled:.2f}")
        b_plain, b_vers = sst_bytes(plain), sst_bytes(versioned)
        print(f"SST bytes, plain: {b_plain / 1e6:.1f} MB; versioned: {b_vers / 1e6:.1f} MB")
        extra = (b_vers - b_plain) / total
        print(f"disk bytes per version (versioned - plain SSTs) / records: {extra:.1f}")
        print(f"disk bytes per version (versioned SSTs / records): {b_vers / total:.1f}")
        p99s: dict[str, list[float]] = {}
        for r in range(rounds):  # the tails move with the machine's load: a median of rounds
            if rounds > 1:
                print(f"round {r + 1} (load {os.getloadavg()[0]:.1f})")
            figures = asyncio.run(as_of_latency(versioned, keys, versions))
            for label, (p50, p99) in figures.items():
                print(f"{label:28s} p50 {p50:5.1f} µs  p99 {p99:5.1f} µs")
                p99s.setdefault(label, []).append(p99)
        if rounds > 1:
            for label, values in p99s.items():
                print(f"{label:28s} p99 median of {rounds}: {statistics.median(values):5.1f} µs")
        plain._state.store.close()
        versioned._state.store.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--versions", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1, help="latency rounds (median p99)")
    args = parser.parse_args()
    main(args.keys, args.versions, args.rounds)
