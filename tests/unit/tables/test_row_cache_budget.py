"""A row cache bounded by memory (``TABLESTREAM_TABLE_CACHE_MB``, the worker's default) is sized
from its table once ready: a table whose rows fit decoded is decoded whole, a larger one keeps a
share decoded and its bytes with the rest; reads equal the store throughout, with batches landing
between the preload's chunks (real RocksDB, the loader's apply + commit path, no broker)."""

from __future__ import annotations

import asyncio
import tracemalloc
from pathlib import Path

from app.settings import Settings
from core import codec
from tables.apply import Applier
from tables.cache_settings import CacheSettings
from tables.reference import ReferenceTable
from tables.rowcache import DECODED_SHARE, RowCache
from tables.rowsize import decoded_size
from tables.spec import TableSpec
from tables.state import stored_decoder
from tests.support.records import TableRec as Rec
from tests.support.rowcache import ModelWriter, row


def test_the_decoded_size_estimate_follows_what_rows_take() -> None:
    """:func:`decoded_size` against tracemalloc's count of the same rows held under their key
    texts (what sizes the cache): within 15%."""
    decode = stored_decoder(codec.loads)
    raws = [(str(i).encode(), codec.dumps(row(i) | {"tags": ["a", str(i)]})) for i in range(5000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        rows = {k.decode(): decode(v) for k, v in raws}
        taken = (tracemalloc.get_traced_memory()[0] - before) / len(rows)
    finally:
        tracemalloc.stop()
    estimate = sum(decoded_size(k, v) for k, v in rows.items()) / len(rows)
    assert 0.85 < estimate / taken < 1.15, (estimate, taken)


def test_the_worker_defaults_size_the_cache_from_the_table() -> None:
    settings = Settings.from_env({})
    sizes = CacheSettings(
        settings.table_cache_rows, settings.table_cache_mb, settings.table_cache_preload
    )
    assert sizes == CacheSettings()
    cache = sizes.cache()
    assert cache.budget == 256 * 1024 * 1024
    assert sizes.preload
    fixed = CacheSettings(rows=5, mb=0.5).cache()  # a row count given: fixed bounds, as before
    assert (fixed.budget, fixed.max_rows, fixed.max_raw_bytes) == (0, 5, 512 * 1024)
    assert not fixed.size_for(1_000)


def test_sizing_splits_the_budget_by_the_tables_rows() -> None:
    cache = RowCache.budgeted(1)  # 1 MiB
    cache.row_size, cache.raw_size = 500.0, 200.0
    assert cache.size_for(1_000)  # 500 KB decoded: fits
    assert cache.max_rows >= 2_000  # room to grow, and for int probes' aliases
    assert cache.max_raw_bytes == (2**20 - 500_000) // 2
    for i in range(2_000):
        cache.put(str(i), {"i": i})
    # 1.5 MB decoded: the table's bytes (and 10%) in the bytes level, the rest decoded.
    assert not cache.size_for(3_000)
    assert cache.max_raw_bytes == 660_000
    assert cache.max_rows == (2**20 - 660_000) // 500 == 777
    steps = 1
    while not cache.trim(500):  # the rows held above the new bound leave, oldest first
        steps += 1
    assert steps == 3
    assert list(cache.rows) == [str(i) for i in range(2_000 - 777, 2_000)]
    # Bytes beyond the budget too: the decoded rows keep their share.
    assert not cache.size_for(10_000)
    assert cache.max_raw_bytes == int(2**20 * (1 - DECODED_SHARE))
    assert cache.max_rows == int(2**20 * DECODED_SHARE / 500)


def table_of(tmp_path: Path, mb: float) -> ReferenceTable:
    table = ReferenceTable(
        TableSpec("t", "t", key_field="id"),
        tmp_path,
        "127.0.0.1:1",
        row_cache=CacheSettings(mb=mb).cache(),
        preload_cache=True,
    )
    table._state.store.open()
    return table


async def preload_while_writing(table: ReferenceTable, keys: int) -> tuple[dict[str, object], int]:
    """Write ``keys`` rows, turn ready, run the preload (chunks of 16) while batches of
    updates, deletes and new keys land between its chunks; returns the model of the store and
    what the preload added."""
    state = table._state
    writer = ModelWriter(state, state.store, seed=7)
    model, rng = writer.model, writer.rng

    def write(keys: list[int]) -> None:
        writer.write(keys, deletes=0.2)

    write(list(range(keys)))
    state.set_ready()
    task = asyncio.ensure_future(table.preload_cache(chunk=16))
    while not task.done():
        write([rng.randrange(keys + 20) for _ in range(3)])
        for _ in range(5):
            k = str(rng.randrange(keys + 20))
            assert table.get(k) == model.get(k)
        await asyncio.sleep(0)
    return model, task.result()


async def test_a_table_within_the_budget_is_decoded_whole(tmp_path: Path) -> None:
    table = table_of(tmp_path, mb=1)  # 400 rows of ~500 bytes decoded: fits
    try:
        model, added = await preload_while_writing(table, 400)
        cache = table._state.rows
        assert added > 0
        assert cache.row_size > 0
        assert cache.max_rows >= 2 * len(table)
        decoded = {k: v for k, v in cache.rows.items() if v is not None}
        # Every key decoded but those written after their chunk (dropped, read back later).
        assert len(decoded) > 0.7 * len(model)
        for key, value in decoded.items():
            assert value == model[key], key
        assert len(decoded) * cache.row_size <= cache.budget
        for key in [str(k) for k in range(430)]:
            assert table.get(key) == model.get(key)
        key = next(k for k in decoded if k in cache.rows)
        assert table.get(key) is cache.rows[key]  # one probe: the row held, not a new decode
    finally:
        table._state.store.close()


async def test_a_table_above_the_budget_keeps_a_share_decoded_and_the_rest_as_bytes(
    tmp_path: Path,
) -> None:
    table = table_of(tmp_path, mb=0.1)  # 400 rows: ~200 KB decoded, ~60 KB as bytes
    state = table._state
    try:
        # The writes themselves fill the bytes level (the preload adds what they left).
        model, _ = await preload_while_writing(table, 400)
        cache = state.rows
        share = cache.budget - cache.max_raw_bytes  # what the bytes leave to decoded rows
        assert share >= cache.budget * DECODED_SHARE
        assert len(cache.rows) <= cache.max_rows == int(share / cache.row_size)
        assert cache.raw_bytes <= cache.max_raw_bytes
        assert len(cache.raw) > 100  # the store's bytes, up to the rest of the budget
        for skey, raw in cache.raw.items():
            assert raw == state.store.get(skey)
        for key in [str(k) for k in range(430)]:
            assert table.get(key) == model.get(key)
        decoded = len([v for v in cache.rows.values() if v is not None])
        assert decoded * cache.row_size <= share
    finally:
        state.store.close()


def test_a_table_empty_when_ready_is_sized_by_its_writes_and_follows_its_growth(
    tmp_path: Path,
) -> None:
    """Sized at the first commit that keeps rows (none to measure at ready), and again as the
    row count moves by a tenth: first within the budget decoded, then beyond it."""
    table = table_of(tmp_path, mb=0.1)
    state = table._state
    applier = Applier("id", state.decode)
    model: dict[str, object] = {}

    def write(keys: range) -> None:
        batch = state.batch()
        recs = []
        for k in keys:
            model[str(k)] = value = row(k)
            recs.append(Rec(str(k).encode(), codec.dumps(value), k))
        applier.apply(recs, state.store, batch, want_changes=False)
        state.commit(batch)

    try:
        cache = state.rows
        state.set_ready()
        assert not cache.row_size  # nothing to measure yet
        write(range(50))
        assert cache.row_size > 0
        assert cache.raw_size > 0
        assert cache.max_rows >= 100  # 50 rows fit decoded: sized for that
        fits = cache.max_rows
        for k in range(50):
            assert table.get(str(k)) == model[str(k)]
        for lo in range(50, 500, 50):  # ~500 rows: beyond 0.1 MB decoded
            write(range(lo, lo + 50))
        assert cache.max_rows < fits
        assert cache.max_rows * cache.row_size <= cache.budget - cache.max_raw_bytes
        for k in range(520):
            assert table.get(str(k)) == model.get(str(k))
    finally:
        state.store.close()
