"""A cold restore keeps its rows' bytes in the row cache, so the first reads once ready are
answered from memory; the preload then decodes those bytes (freeing them), and reads meanwhile
keep nothing. After a warm restart the preload reads the stored bytes whole first, then decodes
them the same way. And a table built in code gets the worker's cache (real RocksDB, the loader's
apply + commit path, no broker)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from app.settings import Settings
from tables.cache_settings import DEFAULTS, CacheSettings
from tables.kinds import KafkaKind, TableEnv
from tables.reference import ReferenceTable
from tables.rowcache import RowCache
from tables.spec import TableSpec
from tests.support.rowcache import ModelWriter, raw_size

SPEC = TableSpec("t", "t", key_field="id")


def preloaded(table: ReferenceTable, decoded_rows: int, model: dict[str, object]) -> None:
    """The preload of a table that fits decoded has ended: the bytes level within its bound and
    counted exactly, every row decoded but those written after their step (dropped: read back
    later) equal to the model, and reads equal it."""
    cache = table._state.rows
    assert not cache.decoding
    assert decoded_rows > 300
    assert cache.raw_bytes == raw_size(cache) <= cache.max_raw_bytes
    decoded = {k: v for k, v in cache.rows.items() if v is not None}
    assert len(decoded) > 0.8 * len(model)
    for key, value in decoded.items():
        assert value == model[key], key
    for i in range(420):
        assert table.get(str(i)) == model.get(str(i))


async def test_a_cold_restores_bytes_answer_the_first_reads_and_the_preload_decodes_them(
    tmp_path: Path,
) -> None:
    # 400 rows fit 0.25 MB decoded (~430 bytes each), and their bytes (~175 each) are more
    # than the bytes level's bound once sized (half of what the decoded rows leave).
    table = ReferenceTable(
        SPEC, tmp_path, "127.0.0.1:1", row_cache=CacheSettings(mb=0.25).cache(), preload_cache=True
    )
    state = table._state
    store = state.store.open(bulk_if_new=True)
    cache = state.rows
    writer = ModelWriter(state, store, seed=3)
    write, model, rng = writer.write, writer.model, writer.rng

    try:
        store.begin_restore()
        for start in range(0, 400, 100):
            write(list(range(start, start + 100)))
        write(rng.sample(range(400), 60), deletes=0.2)  # keys already restored, some deleted
        assert not cache.row_size  # not sized during the restore: its bounds stay
        assert not cache.rows
        assert {k: v for k, v in cache.raw.items() if v is not None} == dict(store.items())
        store.end_restore()
        state.set_ready()

        task = asyncio.ensure_future(table.preload_cache(chunk=16))
        await asyncio.sleep(0)  # sized, and its first chunk decoded
        over = False
        while not task.done():
            assert cache.decoding
            over = over or cache.raw_bytes > cache.max_raw_bytes
            rows, raw = len(cache.rows), dict(cache.raw)
            for k in [str(rng.randrange(420)) for _ in range(10)]:
                assert table.get(k) == model.get(k)
                assert table.get(int(k)) == model.get(k)
            assert (len(cache.rows), cache.raw) == (rows, raw)  # the reads kept nothing
            write([rng.randrange(420) for _ in range(3)], deletes=0.2)
            await asyncio.sleep(0)

        assert over  # the bytes level held more than its bound until decoded: nothing evicted
        preloaded(table, task.result(), model)
        n = len(cache.rows)
        table.get("999")
        assert len(cache.rows) == n + 1  # decoded: reads keep what they read again
    finally:
        store.close()


async def test_after_a_warm_restart_the_preload_reads_the_bytes_whole_then_decodes_them(
    tmp_path: Path,
) -> None:
    """A warm restart keeps nothing in memory: the preload reads every stored row's bytes
    first (reads then meet memory, not a cold RocksDB), then decodes them as after a cold
    restore; reads equal the store throughout and keep nothing, with batches between steps."""

    def table() -> ReferenceTable:
        cache = CacheSettings(mb=0.25).cache()
        return ReferenceTable(SPEC, tmp_path, "127.0.0.1:1", row_cache=cache, preload_cache=True)

    before = table()
    writer = ModelWriter(before._state, before._state.store.open(bulk_if_new=True), seed=5)
    for start in range(0, 400, 100):
        writer.write(list(range(start, start + 100)))
    writer.write(writer.rng.sample(range(400), 60), deletes=0.2)
    before._state.store.close()

    after = table()  # the same RocksDB directory: a warm restart
    state = after._state
    store = state.store.open()
    writer.attach(state, store)
    cache, model, rng = state.rows, writer.model, writer.rng
    try:
        assert store.count == len(model)
        assert not cache.raw
        assert not cache.rows
        state.set_ready()
        task = asyncio.ensure_future(after.preload_cache(chunk=16))
        await asyncio.sleep(0)  # sized, and its first step read
        whole = False  # every stored row's bytes held, while few were decoded yet
        while not task.done():
            assert cache.decoding
            held = {k: v for k, v in cache.raw.items() if v is not None}
            whole = whole or (len(held) >= 0.9 * store.count and len(cache.rows) < 100)
            for skey, raw in held.items():
                assert raw == store.get(skey)
            rows, raw_held = len(cache.rows), dict(cache.raw)
            for k in [str(rng.randrange(420)) for _ in range(10)]:
                assert after.get(k) == model.get(k)
            assert (len(cache.rows), cache.raw) == (rows, raw_held)  # the reads kept nothing
            writer.write([rng.randrange(420) for _ in range(3)], deletes=0.2)
            await asyncio.sleep(0)

        assert whole
        preloaded(after, task.result(), model)
    finally:
        store.close()


def test_a_table_built_in_code_gets_the_workers_cache(tmp_path: Path) -> None:
    """The same cache from the worker's settings (no variables set), from a table kind given no
    cache settings, and from a ReferenceTable given none: one source of the defaults."""
    settings = Settings.from_env({})
    from_env = CacheSettings(
        settings.table_cache_rows, settings.table_cache_mb, settings.table_cache_preload
    )
    assert from_env == DEFAULTS
    worker = KafkaKind().create(SPEC, TableEnv(data_dir=tmp_path / "w", row_cache=from_env))
    kind = KafkaKind().create(SPEC, TableEnv(data_dir=tmp_path / "k"))
    plain = ReferenceTable(SPEC, tmp_path / "p", "127.0.0.1:1")

    def shape(table: object) -> tuple[object, ...]:
        assert isinstance(table, ReferenceTable)
        c = table._state.rows
        return (c.budget, c.max_rows, c.max_raw_bytes, c.fill, table._preload)

    assert shape(plain) == shape(worker) == shape(kind)
    assert shape(plain)[0] == 256 * 2**20
    assert shape(plain)[-2:] == (True, True)  # filled from writes, preloaded once ready
    fixed = ReferenceTable(SPEC, tmp_path / "f", "127.0.0.1:1", row_cache=RowCache(5))
    assert not fixed._preload  # a cache given: the preload only when asked for
