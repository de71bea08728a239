"""The row cache's two levels (decoded rows, stored bytes) evict oldest first within their
bounds and never answer with a row the store no longer holds (real RocksDB, the loader's
apply + commit path, no broker)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.settings import Settings
from core import codec
from core.errors import ConfigError
from tables.apply import Applier
from tables.cache_settings import CacheSettings
from tables.kinds import KafkaKind, TableEnv
from tables.reference import ReferenceTable
from tables.rowcache import (
    EVICT_SHARE,
    FULL_ADMIT,
    RAW_ENTRY_OVERHEAD,
    RowCache,
)
from tables.spec import TableSpec
from tests.support.records import TableRec as Rec
from tests.support.rowcache import raw_size


def test_decoded_rows_leave_oldest_first_one_per_put() -> None:
    cache = RowCache(max_rows=3)
    for key in ("a", "b", "c", "d"):
        cache.put(key, {"k": key})
    assert list(cache.rows) == ["b", "c", "d"]  # 'a' left; nothing else did
    cache.invalidate([b"c"])
    cache.put("c", {"k": "c2"})  # back after an invalidation: its old place in line is stale
    cache.put("e", None)
    assert set(cache.rows) == {"c", "d", "e"}  # 'b' was the oldest still held
    cache.put("f", 1)
    assert set(cache.rows) == {"d", "e", "f"}  # 'c' leaves early: its stale place came first
    assert len(cache) == 3


def test_a_full_cache_evicts_a_share_of_its_oldest_rows_at_once() -> None:
    cache = RowCache(max_rows=1_000)
    for i in range(1_000):
        cache.put(i, i)
    cache.invalidate([b"0", b"1"])  # their places in line are stale now
    cache.put(1_000, 0)
    cache.put(1_001, 0)
    cache.put(1_002, 0)  # full: the oldest 1_000 // EVICT_SHARE rows still held leave
    assert list(cache.rows) == list(range(2 + 1_000 // EVICT_SHARE, 1_003))


def test_integer_probes_are_dropped_with_their_text() -> None:
    cache = RowCache(max_rows=10)
    for key in ("a", 12, "12", 7):
        cache.put(key, {"k": key})
    cache.invalidate([b"12", b"zz"])
    assert set(cache.rows) == {"a", 7}
    cache.invalidate([b"d"] * 5000)  # a large batch clears the decoded rows
    assert len(cache) == 0


def test_invalidations_do_not_grow_the_insertion_order_without_bound() -> None:
    cache = RowCache(max_rows=100, max_raw_mb=1)
    for i in range(20_000):
        key = str(i % 50)
        cache.put(key, i)
        cache.put_raw(key.encode(), b"x" * (i % 7))
        cache.invalidate([key.encode()])
    assert not cache  # everything put was dropped again
    assert len(cache._order) <= 2 * 100 + 1024
    assert len(cache._raw_order) <= 1024
    assert cache.raw_bytes == 0


def test_stored_bytes_stay_within_their_budget_and_are_counted_exactly() -> None:
    rng = random.Random(7)
    budget = 0.01  # MB: ~10 KB, a few dozen entries
    cache = RowCache(max_rows=10, max_raw_mb=budget)
    for step in range(5_000):
        op = rng.random()
        key = str(rng.randrange(300)).encode()
        if op < 0.7:
            if key not in cache.raw:
                cache.put_raw(key, None if rng.random() < 0.1 else b"v" * rng.randrange(300))
        elif op < 0.85:
            keys = [str(rng.randrange(300)).encode() for _ in range(rng.randrange(1, 5))]
            cache.invalidate(keys)
        elif op < 0.95:
            # A committed batch's writes kept (fill on) or dropped: repeated keys, deletes,
            # batches that fit whole and ones that do not.
            cache.fill = rng.random() < 0.7
            keys = [str(rng.randrange(300)).encode() for _ in range(rng.randrange(1, 40))]
            values = [None if rng.random() < 0.1 else b"w" * rng.randrange(200) for _ in keys]
            cache.written(keys, values)
            if cache.fill:  # what is held of them is their last bytes
                last = dict(zip(keys, values, strict=True))
                assert all(cache.raw[k] == last[k] for k in last if k in cache.raw)
            else:
                assert cache.raw.keys().isdisjoint(keys)
        elif op < 0.99:
            many = [str(k).encode() for k in range(300)]
            cache.invalidate(many)
        else:
            cache.clear()
        assert cache.raw_bytes == raw_size(cache), step
        assert cache.raw_bytes <= cache.max_raw_bytes
    full = RowCache(max_rows=0, max_raw_mb=budget)
    kept = [i for i in range(1_000) if full.put_raw(str(i).encode(), b"v" * 100)]
    first_refused = next(i for i in range(1_000) if i not in kept)
    # Once full, one read in FULL_ADMIT is kept; oldest first out: what is held is the newest
    # of those kept, as many as fit.
    after = [i for i in kept if i > first_refused]
    assert kept[:first_refused] == list(range(first_refused))
    assert 0 < len(after) <= 2 * (1_000 - first_refused) // FULL_ADMIT + 1
    assert all(j - i <= FULL_ADMIT for i, j in itertools.pairwise(after))
    held = [int(k) for k in full.raw]
    assert held == kept[-len(held) :]
    low = full.max_raw_bytes - full.max_raw_bytes // EVICT_SHARE  # evicted down to, at once
    assert low - (3 + RAW_ENTRY_OVERHEAD + 100) < full.raw_bytes


@pytest.fixture
def table(tmp_path: Path) -> Iterator[ReferenceTable]:
    # Tiny caches: most reads go through eviction, the bytes level and RocksDB in turn.
    t = ReferenceTable(
        TableSpec("t", "t", key_field="id"),
        tmp_path,
        "127.0.0.1:1",
        row_cache=RowCache(max_rows=7, max_raw_mb=0.002),
    )
    t._state.store.open()
    yield t
    t._state.store.close()


@pytest.mark.parametrize("fill", [False, True], ids=["drop-writes", "fill-from-writes"])
def test_reads_follow_every_batch_through_both_levels(table: ReferenceTable, fill: bool) -> None:
    """Random batches through the loader's own apply and commit, random reads (text, int and
    float probes) in between, small and large batches: every read equals a model of the topic.
    With ``fill`` the bytes level also takes what batches write (the preload)."""
    rng = random.Random(3)
    state = table._state
    state.rows.fill = fill
    applier = Applier("id", state.decode)
    model: dict[str, dict[str, int]] = {}
    offset = 0
    for _ in range(300):
        batch = state.batch()
        records = []
        size = 3000 if rng.random() < 0.02 else rng.randrange(1, 6)  # > CLEAR_ABOVE sometimes
        for _ in range(size):
            k = rng.randrange(40)
            if rng.random() < 0.25:
                records.append(Rec(str(k).encode(), None, offset))
                model.pop(str(k), None)
            else:
                row = {"id": k, "v": offset}
                records.append(Rec(str(k).encode(), codec.dumps(row), offset))
                model[str(k)] = row
            offset += 1
        applier.apply(records, state.store, batch, want_changes=False)
        state.commit(batch)
        for _ in range(30):
            k = rng.randrange(45)
            probe: str | int | float = rng.choice((str(k), k, float(k)))
            assert table.get(probe) == model.get(str(k)), (probe, offset)
        assert len(state.rows) <= 7
        assert state.rows.raw_bytes <= state.rows.max_raw_bytes


def test_a_closed_store_reads_as_empty_and_caches_nothing(table: ReferenceTable) -> None:
    state = table._state
    batch = state.batch()
    Applier("id", state.decode).apply(
        [Rec(b"1", codec.dumps({"id": 1}), 0)], state.store, batch, want_changes=False
    )
    state.commit(batch)
    state.store.close()
    assert table.get("1") is None
    assert not state.rows
    state.store.open()
    assert table.get("1") == {"id": 1}
    assert state.rows.raw == {b"1": codec.dumps({"id": 1})}


def test_the_settings_size_a_kafka_tables_cache(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "TABLESTREAM_TABLE_CACHE_ROWS": "5",
            "TABLESTREAM_TABLE_CACHE_MB": "0.5",
            "TABLESTREAM_TABLE_CACHE_PRELOAD": "true",
        }
    )
    sizes = CacheSettings(
        settings.table_cache_rows, settings.table_cache_mb, settings.table_cache_preload
    )
    table = KafkaKind().create(TableSpec("t", "t"), TableEnv(data_dir=tmp_path, row_cache=sizes))
    assert isinstance(table, ReferenceTable)
    cache = table._state.rows
    assert (cache.max_rows, cache.max_raw_bytes, table._preload) == (5, 512 * 1024, True)
    assert table.row_cache()[0] is cache.rows
    with pytest.raises(ConfigError, match="TABLESTREAM_TABLE_CACHE_MB"):
        Settings.from_env({"TABLESTREAM_TABLE_CACHE_MB": "-1"})


def test_a_read_keeps_bytes_and_row_and_the_row_outlives_the_bytes(table: ReferenceTable) -> None:
    state = table._state
    batch = state.batch()
    rows = [Rec(str(i).encode(), codec.dumps({"id": i}), i) for i in range(40)]
    Applier("id", state.decode).apply(rows, state.store, batch, want_changes=False)
    state.commit(batch)
    first = table.get("3")
    assert first == {"id": 3}
    assert state.rows.raw[b"3"] == codec.dumps({"id": 3})
    assert table.get("3") is first  # the decoded row, not decoded again
    assert table.get("99") is None
    assert state.rows.raw[b"99"] is None  # a miss is kept too
    for _ in range(FULL_ADMIT):  # push b"3" out of the ~2 KB of bytes, and "3" out of the rows
        for i in range(10, 40):  # (a full bytes level takes one read in FULL_ADMIT)
            table.get(str(i))
    assert b"3" not in state.rows.raw
    assert "3" not in state.rows.rows
    assert table.get("3") == first  # from RocksDB again
