"""ReferenceTable.get() answers from its row cache; the loader's writes drop cached rows."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from app.broker import Broker
from tables.cache_settings import CacheSettings
from tables.reference import ReferenceTable
from tables.rowcache import RowCache
from tables.spec import TableSpec
from tests.support.kafka import create_topic, produce, rows, unique

pytestmark = pytest.mark.broker


async def until(check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_cached_rows_follow_updates_deletes_and_inserts(
    broker: Broker, tmp_path: Path
) -> None:
    topic = await create_topic(broker.url, unique("cached"), partitions=2)
    await produce(broker.url, topic, rows((str(i), {"id": i, "v": 0}) for i in range(50)))
    # A cache of fixed bounds, no preload: reads keep what they read (the default decodes all).
    table = ReferenceTable(
        TableSpec("cached", topic, key_field="id"),
        tmp_path,
        broker.url,
        row_cache=RowCache(max_rows=1_000),
    )
    await table.start()
    try:
        assert await table.wait_until_ready(60)
        cache = table._state.rows
        # Probed as text, as int, and a miss: all three cached.
        assert table.get("7") == {"id": 7, "v": 0}
        assert table.get(8) == {"id": 8, "v": 0}
        assert table.get("99") is None
        assert table.get(1.0) == {"id": 1, "v": 0}  # a float goes by its key text
        assert len(cache) == 4
        assert table.get("7") is table.get("7")  # a hit is the cached row itself

        await produce(
            broker.url,
            topic,
            rows([("7", {"id": 7, "v": 1}), ("8", None), ("99", {"id": 99, "v": 2})]),
        )
        await until(lambda: table.stats().records_read == 53)
        assert table.get("7") == {"id": 7, "v": 1}
        assert table.get(8) is None
        assert table.get("8") is None
        assert table.get(99) == {"id": 99, "v": 2}
        assert table.get("1") == {"id": 1, "v": 0}
    finally:
        await table.stop()
    # A stopped table reads as empty, whatever it had cached.
    assert table.get("7") is None
    assert len(table._state.rows) == 0


async def test_a_preloaded_table_is_decoded_ahead_and_follows_the_topic(
    broker: Broker, tmp_path: Path
) -> None:
    """With the preload a table within both bounds is decoded once ready (a get() is the row
    already held); the loader's later batches write their bytes through and drop the rows."""
    topic = await create_topic(broker.url, unique("preloaded"), partitions=2)
    await produce(broker.url, topic, rows((str(i), {"id": i, "v": 0}) for i in range(50)))
    table = ReferenceTable(
        TableSpec("preloaded", topic, key_field="id"),
        tmp_path,
        broker.url,
        row_cache=RowCache(max_rows=100, max_raw_mb=1),
        preload_cache=True,
    )
    await table.start()
    try:
        assert await table.wait_until_ready(60)
        cache = table._state.rows
        await until(lambda: len(cache.rows) == 50)
        assert table.get("7") is cache.rows["7"]
        assert table.get(7) is cache.rows["7"]  # an int probe: the same row, not decoded again
        await produce(
            broker.url,
            topic,
            rows([("7", {"id": 7, "v": 1}), ("8", None), ("99", {"id": 99, "v": 2})]),
        )
        await until(lambda: table.stats().records_read == 53)
        assert cache.raw[b"7"] is not None
        assert b'"v":1' in cache.raw[b"7"].replace(b" ", b"")
        assert cache.raw[b"8"] is None  # a delete, held as a known miss
        assert "7" not in cache.rows
        assert 7 not in cache.rows
        assert table.get("7") == {"id": 7, "v": 1}
        assert table.get(8) is None
        assert table.get("99") == {"id": 99, "v": 2}
        assert table.get("1") is cache.rows["1"] == {"id": 1, "v": 0}
    finally:
        await table.stop()


async def test_the_default_cache_decodes_a_restored_table_once_ready(
    broker: Broker, tmp_path: Path
) -> None:
    """The worker's default cache (sized from the table within its MB), which a table built in
    code without cache settings gets too: a cold restore from the topic keeps the rows' bytes,
    the preload decodes them (the table fits), and the loader's later batches drop what they
    change; a warm restart decodes it again from the store."""
    topic = await create_topic(broker.url, unique("budgeted"), partitions=2)
    await produce(broker.url, topic, rows((str(i), {"id": i, "v": 0}) for i in range(300)))
    spec = TableSpec("budgeted", topic, key_field="id")
    for restart in (False, True):
        table = ReferenceTable(spec, tmp_path, broker.url)  # the defaults: CacheSettings()
        assert table._state.rows.budget == CacheSettings().mb * 2**20
        await table.start()
        try:
            assert await table.wait_until_ready(60)
            assert table.preloading is not None
            await table.preloading
            cache = table._state.rows
            assert cache.row_size > 0
            assert cache.max_rows >= 2 * 300
            want = {str(i): {"id": i, "v": 0} for i in range(300)}
            if restart:
                want |= {"7": {"id": 7, "v": 1}, "99": {"id": 99, "v": 2}}
                del want["8"]
            assert cache.rows == want  # decoded ahead of any read
            assert not cache.raw  # the restore's bytes, decoded, are gone
            assert table.get("7") is cache.rows["7"]
            if not restart:
                await produce(
                    broker.url,
                    topic,
                    rows([("7", {"id": 7, "v": 1}), ("8", None), ("99", {"id": 99, "v": 2})]),
                )
                await until(lambda t=table: t.stats().records_read == 303)  # type: ignore[misc]
                assert "7" not in cache.rows
                assert "8" not in cache.rows
                assert table.get("7") == {"id": 7, "v": 1}
                assert table.get(8) is None
                assert table.get("99") == {"id": 99, "v": 2}
        finally:
            await table.stop()


def test_row_cache_is_bounded_and_drops_int_probes() -> None:
    cache = RowCache(max_rows=3)
    for key in ("a", "b", 12):
        cache.put(key, {"k": key})
    cache.invalidate([b"12", b"zz"])
    assert set(cache.rows) == {"a", "b"}
    cache.put("c", None)
    cache.put("d", 1)  # full: the oldest row leaves
    assert cache.rows == {"b": {"k": "b"}, "c": None, "d": 1}
    cache.invalidate([b"d"] * 5000)  # a large batch clears everything
    assert len(cache) == 0
