"""The row cache's bytes level filled ahead of reads: by the preload (in key order, batches
landing between its chunks) and by the writes of a table within its budget; what is held is
always what the store holds (real RocksDB, the loader's apply + commit path, no broker)."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from core import codec
from tables.apply import Applier
from tables.reference import ReferenceTable
from tables.rowcache import RowCache
from tables.spec import TableSpec
from tables.store import StoreBatch
from tests.support.records import TableRec as Rec
from tests.support.rowcache import raw_size


async def test_preload_fills_the_bytes_level_in_key_order_and_follows_writes_meanwhile(
    tmp_path: Path,
) -> None:
    table = ReferenceTable(
        TableSpec("t", "t"),  # keyed by the record key: zero-padded, so key order is numeric
        tmp_path,
        "127.0.0.1:1",
        row_cache=RowCache(max_rows=3, max_raw_mb=0.01),
    )
    state = table._state
    state.store.open()
    try:
        applier = Applier(None, state.decode)
        model: dict[str, dict[str, int]] = {}

        def write(keys: list[int], v: int) -> None:
            batch = state.batch()
            recs = []
            for k in keys:
                model[f"{k:03}"] = {"id": k, "v": v}
                recs.append(Rec(f"{k:03}".encode(), codec.dumps(model[f"{k:03}"]), v))
            applier.apply(recs, state.store, batch, want_changes=False)
            state.commit(batch)

        write(list(range(200)), 0)
        state.set_ready()
        task = asyncio.ensure_future(table.preload_cache(chunk=4))
        v = 1
        while not task.done():  # batches land between the preload's chunks
            write([v % 200, (v * 7) % 200], v)
            v += 1
            await asyncio.sleep(0)
        added = task.result()
        raw = state.rows.raw
        assert added > 0
        assert len(raw) < 200  # stopped when full: nothing evicted for it
        assert state.rows.raw_bytes == raw_size(state.rows) <= state.rows.max_raw_bytes
        assert list(raw) == sorted(raw)  # read in key order
        # Up to the last row read, a key not held is one a batch wrote meanwhile (dropped).
        written = {f"{i % 200:03}".encode() for i in range(1, v)}
        written |= {f"{(i * 7) % 200:03}".encode() for i in range(1, v)}
        below = {f"{k:03}".encode() for k in range(200)} - raw.keys()
        assert {k for k in below if k < max(raw)} <= written
        for skey, held in raw.items():  # what is held is what the store holds now
            assert held == state.store.get(skey)
        assert not state.rows.rows  # not within the bounds: no row decoded ahead of a read
        write([0, 1, 2], 999)
        for key, row in model.items():
            assert table.get(key) == row
    finally:
        state.store.close()


@pytest.mark.parametrize("restore", [True, False], ids=["cold-restore", "live-batches"])
async def test_a_table_within_the_budget_is_held_from_its_writes(
    tmp_path: Path, restore: bool
) -> None:
    """With the preload on, the batches that update a table fill the bytes level (key-only bulk
    path and full path alike, a cold restore's too): every key's bytes are the store's, deletes
    held as known misses; reads equal the model throughout."""
    table = ReferenceTable(
        TableSpec("t", "t", key_field="id"),
        tmp_path,
        "127.0.0.1:1",
        row_cache=RowCache(max_rows=50, max_raw_mb=1),
        preload_cache=True,
    )
    state = table._state
    store = state.store.open()
    rng = random.Random(5)
    try:
        if restore:
            store.begin_restore()
        applier = Applier("id", state.decode)
        model: dict[str, bytes] = {}
        offset = 0
        for n in range(40):
            records = []
            for _ in range(rng.randrange(1, 300)):
                k = str(rng.randrange(500))
                if rng.random() < 0.1:
                    records.append(Rec(k.encode(), None, offset))
                    model.pop(k, None)
                else:
                    raw = codec.dumps({"id": int(k), "v": offset})
                    records.append(Rec(k.encode(), raw, offset))
                    model[k] = raw
                offset += 1
            batch = state.batch()
            assert batch.values is not None  # room left: the batch keeps its bytes
            # Every 4th batch wants its changes: the full path, not the key-only one.
            applier.apply(records, store, batch, want_changes=n % 4 == 3)
            state.commit(batch)
            if n % 10 == 9:
                for _ in range(100):
                    k = str(rng.randrange(520))
                    assert table.get(k) == (codec.loads(model[k]) if k in model else None)
        if restore:  # every row's bytes held already: nothing for the preload to read
            store.end_restore()
            state.set_ready()
            assert await table.preload_cache(chunk=64) == 0
        held = state.rows.raw
        assert {k.decode(): v for k, v in held.items() if v is not None} == model
        assert dict(store.items()) == {k: v for k, v in held.items() if v is not None}
        assert state.rows.raw_bytes == raw_size(state.rows) <= state.rows.max_raw_bytes
    finally:
        store.close()


def test_writes_fill_only_while_they_fit_and_a_refused_batch_keeps_nothing(
    tmp_path: Path,
) -> None:
    table = ReferenceTable(
        TableSpec("t", "t", key_field="id"),
        tmp_path,
        "127.0.0.1:1",
        row_cache=RowCache(max_rows=50, max_raw_mb=0.02),  # ~20 KB: ~100 of the 300 rows
        preload_cache=True,
    )
    state = table._state
    store = state.store.open()
    applier = Applier("id", state.decode)

    def batch_of(keys: range, v: int) -> StoreBatch:
        batch = state.batch()
        recs = [Rec(str(k).encode(), codec.dumps({"id": k, "v": v}), k) for k in keys]
        applier.apply(recs, store, batch, want_changes=False)
        return batch

    try:
        for lo in range(0, 300, 50):
            state.commit(batch_of(range(lo, lo + 50), 0))
        cache = state.rows
        held = set(cache.raw)
        assert 0 < len(held) < 300
        assert cache.raw_bytes == raw_size(cache) <= cache.max_raw_bytes
        assert not cache.wants_values or cache.raw_bytes < cache.max_raw_bytes
        stale = batch_of(range(0, 10), 1)
        store.close()
        store.open()  # a reopen: the batch made before it is refused by the store
        state.commit(stale)
        for k in range(0, 10):
            assert cache.raw.get(str(k).encode()) != codec.dumps({"id": k, "v": 1})
            assert table.get(str(k)) == {"id": k, "v": 0}
        for k in range(300):  # every read is the store's row, held or not
            assert table.get(k) == {"id": k, "v": 0}
    finally:
        store.close()


async def test_preloaded_rows_follow_batches_landing_between_chunks(tmp_path: Path) -> None:
    """The decoded preload (a table within both bounds: every get() one dict probe) decodes
    what the bytes level holds while batches (updates, deletes) land between its chunks: every
    decoded row equals the model's row of its key at the end, and reads too."""
    table = ReferenceTable(
        TableSpec("t", "t", key_field="id"),
        tmp_path,
        "127.0.0.1:1",
        row_cache=RowCache(max_rows=300, max_raw_mb=1),
        preload_cache=True,
    )
    state = table._state
    state.store.open()
    rng = random.Random(11)
    try:
        applier = Applier("id", state.decode)
        model: dict[str, dict[str, int] | None] = {}

        def write(keys: list[int], v: int) -> None:
            batch = state.batch()
            recs = []
            for k in keys:
                if rng.random() < 0.2:
                    model[str(k)] = None
                    recs.append(Rec(str(k).encode(), None, v))
                else:
                    model[str(k)] = {"id": k, "v": v}
                    recs.append(Rec(str(k).encode(), codec.dumps({"id": k, "v": v}), v))
            applier.apply(recs, state.store, batch, want_changes=False)
            state.commit(batch)

        write(list(range(200)), 0)  # filled into the bytes level by the write itself
        assert len(state.rows.raw) == 200
        state.set_ready()
        task = asyncio.ensure_future(table.preload_cache(chunk=8))
        v = 1
        while not task.done():
            write([rng.randrange(220) for _ in range(3)], v)
            v += 1
            await asyncio.sleep(0)
        assert task.result() == 0  # nothing left to read from the store
        decoded = state.rows.rows
        # Within both bounds: decoded ahead of reads; keys written during the preload may have
        # been dropped after their chunk, so not all of them.
        assert len(decoded) > 100
        assert set(decoded) <= {k for k, r in model.items() if r}
        for key, row in decoded.items():
            assert row == model[key], key
        for key, row in model.items():
            assert table.get(key) == row
        # An int probe finds the row decoded under its text: the same object, not a new decode.
        some = next(iter(decoded))
        assert table.get(int(some)) is decoded[some]
        assert decoded[int(some)] is decoded[some]
    finally:
        state.store.close()
