"""The change feed equals the diff of consecutive snapshots; as-of reads match a model.

Random operations (hypothesis) on the MemoryTable and on the RocksDB table's apply path, plain
and versioned; plus the async ``changes()`` stream and its overflow.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tables import MemoryTable
from tables.changes import ChangeFeed, ChangeStreamOverflowError
from tables.protocol import Change, Op
from tables.spec import TableSpec
from tables.versions import HistoryExpiredError
from tests.support.versioned import AppliedTable

KEYS = st.sampled_from(["a", "b", "c", "d"])
VALUES = st.one_of(st.none(), st.integers(0, 3).map(lambda i: {"v": i}))
OP = st.tuples(KEYS, VALUES, st.integers(0, 50))
BATCHES = st.lists(st.lists(OP, min_size=1, max_size=5), min_size=1, max_size=12)
KINDS = ["memory", "memory-versioned", "rocksdb", "rocksdb-versioned"]


def replay(before: dict[str, Any], changes: list[Change]) -> dict[str, Any]:
    state = dict(before)
    for c in changes:
        assert c.old_value == state.get(c.key), c
        expected = Op.INSERT if c.old_value is None else Op.DELETE if c.value is None else Op.UPDATE
        assert c.op is expected
        if c.value is None:
            del state[c.key]
        else:
            state[c.key] = c.value
    return state


def model_as_of(records: list[tuple[str, Any, int]], key: str, ts: int) -> Any:
    """The value of the record with the greatest (timestamp, arrival) at or before ``ts``."""
    best: tuple[int, int] | None = None
    value = None
    for arrival, (k, v, t) in enumerate(records):
        if k == key and t <= ts and (best is None or (t, arrival) > best):
            best, value = (t, arrival), v
    return value


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=BATCHES)
def test_feed_is_the_snapshot_diff(kind: str, batches: list[list[tuple[str, Any, int]]]) -> None:
    versioned = kind.endswith("versioned")
    options: dict[str, Any] = {"versions": 1000} if versioned else {}
    with tempfile.TemporaryDirectory() as tmp:
        applied = None
        if kind.startswith("rocksdb"):
            applied = AppliedTable(Path(tmp), TableSpec("t", "t", **options))
            table: Any = applied.table
        else:
            table = MemoryTable("t", **options)
        seen: list[Change] = []
        table.subscribe(seen.append)
        records: list[tuple[str, Any, int]] = []
        last_version = 0
        for batch in batches:
            before = table.snapshot()
            seen.clear()
            if applied is not None:
                applied.put_many(batch)
            else:
                for key, value, ts in batch:
                    table.put(key, value, ts)
            assert replay(before, seen) == table.snapshot()
            versions = [c.version for c in seen]
            assert versions == sorted(set(versions))
            assert all(v > last_version for v in versions)
            last_version = table.version
            records.extend(batch)
        if versioned:
            for key in ("a", "b", "c", "d"):
                assert table.get(key) == model_as_of(records, key, 10**9)
                for ts in range(-1, 52, 3):
                    assert table.get_as_of(key, ts) == model_as_of(records, key, ts), (key, ts)
        if applied is not None:
            applied.close()


async def test_changes_stream_delivers_in_order_and_closes() -> None:
    t = MemoryTable("t")
    async with t.changes(maxsize=10) as stream:
        t.put("a", {"v": 1})
        t.put("a", {"v": 2})
        t.delete("a")
        got = [await anext(stream) for _ in range(3)]
        assert [(c.op, c.version) for c in got] == [(Op.INSERT, 1), (Op.UPDATE, 2), (Op.DELETE, 3)]
        waiter = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0)
        assert not waiter.done()
        t.put("b", {"v": 1})
        assert (await waiter).key == "b"
        stream.close()
        with pytest.raises(StopAsyncIteration):
            await anext(stream)
    t.put("c", {"v": 1})  # nobody listens any more
    assert len(stream) == 0


async def test_changes_stream_overflow_ends_after_the_queued_changes() -> None:
    t = MemoryTable("t")
    stream = t.changes(maxsize=2)
    for i in range(4):
        t.put(str(i), {"v": i})
    delivered: list[str] = []

    async def consume() -> None:
        async for change in stream:
            delivered.append(change.key)

    with pytest.raises(ChangeStreamOverflowError) as info:
        await consume()
    assert delivered == ["0", "1"]
    assert info.value.fields == {"table": "t", "maxsize": 2, "version": 2}


def _as_of(table: Any, key: str, ts: int) -> Any:
    try:
        return table.get_as_of(key, ts)
    except HistoryExpiredError:
        return "expired"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=st.lists(OP, min_size=1, max_size=40),
    versions=st.integers(1, 4),
    retention=st.one_of(st.none(), st.integers(1, 30)),
)
def test_rocksdb_history_matches_memory_under_retention(
    ops: list[tuple[str, Any, int]], versions: int, retention: int | None
) -> None:
    """The RocksDB write paths (in-order append, general merge) keep what the MemoryTable keeps."""
    options: dict[str, Any] = {
        "versions": versions,
        "history_retention_ms": retention,
        "as_of_expired": "error",
    }
    memory = MemoryTable("t", **options)
    with tempfile.TemporaryDirectory() as tmp:
        applied = AppliedTable(Path(tmp), TableSpec("t", "t", **options))
        for key, value, ts in ops:
            memory.put(key, value, ts)
            applied.put_many([(key, value, ts)])
        table = applied.table
        for key in ("a", "b", "c", "d"):
            assert table.history(key) == memory.history(key), key
            for ts in range(-1, 52, 2):
                assert _as_of(table, key, ts) == _as_of(memory, key, ts), (key, ts)
        assert table.get_changes_since(0) == memory.get_changes_since(0)
        applied.close()


def test_a_bad_stream_or_listener_size_names_the_table_and_the_value() -> None:
    table = MemoryTable("users", key_field="id")
    with pytest.raises(
        ValueError, match=r"^changes of table 'users': maxsize must be >= 1, not 0$"
    ):
        table.changes(maxsize=0)
    with pytest.raises(ValueError, match=r"^changes of table 'users': last must be >= 1, not -2$"):
        ChangeFeed("users").subscribe(lambda _: None, last=-2)


def test_a_failing_listener_is_logged_naming_the_table_and_the_change(
    caplog: pytest.LogCaptureFixture,
) -> None:
    feed = ChangeFeed("users")

    def boom(change: Change) -> None:
        raise RuntimeError("boom")

    feed.subscribe(boom)
    read = Change("u7", Op.INSERT, {"id": 7}, None, partition=2, offset=41, version=5, topic="u")
    with caplog.at_level(logging.ERROR, logger="tables.changes"):
        feed.publish(read)
        feed.publish(Change("u8", Op.INSERT, {"id": 8}, None, version=6))  # unsubscribed: quiet
    [logged] = caplog.records
    assert logged.getMessage() == (
        f"table 'users': change listener {boom!r} failed on key 'u7' (version 5, from u[2]@41); "
        "unsubscribed"
    )
    assert logged.exc_info is not None
