"""The cache of decoded past versions (tables/versions_cache.py) answers as-of reads exactly as
the RocksDB seek does, across every kind of write that changes a key's history: new and late
versions, deletes, retention by count and by age (on write and by sweep), compaction, a
reopen, and a cache too small for the keys read (it starts over)."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from tables.spec import TableSpec
from tables.versions_store import EXPIRED
from tests.support.versioned import AppliedTable

KEYS = [b"a", b"b", b"c", b"d", b"e", b"f"]


def check(t: AppliedTable) -> int:
    """Every key at times around its versions, cached path against the seek; cache hits."""
    versions = t.state.versions
    assert versions is not None
    decode = t.state.decode_stored
    now = t.table.stream_time
    hits = 0
    for key in KEYS:
        for ts in (-1, 0, 7, 50, 99, 100, 101, 150, now - 51, now - 50, now - 1, now, now + 5):
            cached = key in versions.past.keys
            got = versions.decoded_as_of(key, ts, decode)
            raw = versions.seek(key, ts)
            want = raw if raw is None or raw is EXPIRED else decode(raw)
            assert got == want, (key, ts, now)
            hits += cached
    return hits


def retained_table(tmp_path: Path, cache_versions: int) -> AppliedTable:
    """A table keeping 4 versions for 60 ms, its past-version cache holding ``cache_versions``."""
    t = AppliedTable(tmp_path / "db", TableSpec("p", "p", versions=4, history_retention_ms=60))
    versions = t.state.versions
    assert versions is not None
    versions.past.max_versions = cache_versions
    return t


def random_step(
    t: AppliedTable, rng: random.Random, step: int, keys: str, *, reopen_every: int
) -> None:
    """One batch of updates, deletes, late and tied timestamps; now and then a retention sweep,
    a compaction or a reopen."""
    t.put_many(
        [
            (
                rng.choice(keys),
                None if rng.random() < 0.2 else {"v": rng.randrange(100)},
                rng.randrange(step, step + 80),
            )
            for _ in range(rng.randrange(1, 4))
        ]
    )
    versions = t.state.versions
    assert versions is not None
    if step % 37 == 0:
        versions.sweep()
    if step % 91 == 0:
        t.table.compact(2)
    if step % reopen_every == 0:
        t.reopen()


@pytest.mark.parametrize("cache_versions", [200_000, 7])
def test_cached_as_of_reads_agree_with_the_seek_through_every_write(
    tmp_path: Path, cache_versions: int
) -> None:
    t = retained_table(tmp_path, cache_versions)
    rng = random.Random(3)
    hits = 0
    try:
        for step in range(400):
            random_step(t, rng, step, "abcde", reopen_every=150)
            hits += check(t)
        assert hits > 1_000  # the cache was read, not only filled
    finally:
        t.close()


def test_get_as_of_reads_the_past_from_the_cache(tmp_path: Path) -> None:
    t = AppliedTable(tmp_path / "db", TableSpec("p", "p", versions=10))
    try:
        for i in range(5):
            t.put("k", {"p": i}, 100 * (i + 1))
        t.put("other", {"p": 0}, 900)
        past = t.state.versions.past  # type: ignore[union-attr]
        assert t.table.get_as_of("k", 250) == {"p": 1}
        assert len(past) == 1  # the key's whole history, read once
        assert past.held == 5
        assert t.table.get_as_of("k", 450) == {"p": 3}  # from the cache
        assert t.table.get_as_of("k", 50) is None  # before its first version: no row
        t.put("k", {"p": 9}, 260)  # a late version in the past: the key is dropped
        assert len(past) == 0
        assert t.table.get_as_of("k", 270) == {"p": 9}
        t.delete("k", 300)
        assert t.table.get_as_of("k", 350) is None
        assert t.table.get_as_of("k", 299) == {"p": 9}
    finally:
        t.close()


@pytest.mark.parametrize("cache_versions", [200_000, 7])
async def test_under_a_loop_first_reads_seek_and_deferred_loads_agree_through_every_write(
    tmp_path: Path, cache_versions: int
) -> None:
    """Under an event loop a key's first read is the seek and its history loads after it
    (PastCache.defer): writes, sweeps, compactions and a reopen land between the reads and the
    loads, and every read still agrees with the seek."""
    t = retained_table(tmp_path, cache_versions)
    rng = random.Random(5)
    hits = 0
    try:
        for step in range(300):
            random_step(t, rng, step, "abcdef", reopen_every=113)
            if rng.random() < 0.5:  # the loads queued so far run (or not yet)
                await asyncio.sleep(0)
            hits += check(t)
        assert hits > 500  # loaded histories answered, not only the seek
    finally:
        t.close()


async def test_under_a_loop_the_history_loads_after_the_first_read(tmp_path: Path) -> None:
    t = AppliedTable(tmp_path / "db", TableSpec("p", "p", versions=10))
    try:
        for i in range(5):
            t.put("k", {"p": i}, 100 * (i + 1))
        t.put("other", {"p": 0}, 900)
        past = t.state.versions.past  # type: ignore[union-attr]
        assert t.table.get_as_of("k", 250) == {"p": 1}  # the seek
        assert len(past) == 0
        assert list(past.pending) == [b"k"]
        assert t.table.get_as_of("k", 450) == {"p": 3}  # the seek again, one load queued
        assert t.table.get_as_of("other", 100) is None
        t.put("k", {"p": 9}, 460)  # written after the read, before the load
        await asyncio.sleep(0)
        assert not past.pending
        assert past.held == 7  # k's six versions (the load read the store as it is now), other's
        assert t.table.get_as_of("k", 470) == {"p": 9}  # from the cache
        assert t.table.get_as_of("k", 150) == {"p": 0}
        assert t.table.get_as_of("x", 150) is None  # no history at all: a known miss, later
        t.close()
        await asyncio.sleep(0)  # the store closed: the load finds nothing and keeps nothing
        assert not past.pending
        assert b"x" not in past.keys
    finally:
        t.close()
