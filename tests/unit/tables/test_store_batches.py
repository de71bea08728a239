"""A write batch waiting for its commit (exactly-once holds one per open transaction) neither
keeps the store's database locked nor writes into a database opened after it was made."""

from __future__ import annotations

from pathlib import Path

from tables.store import TableStore


def test_a_pending_batch_does_not_keep_the_database_locked(tmp_path: Path) -> None:
    store = TableStore(tmp_path / "s").open()
    batch = store.batch()
    batch.put(b"k", b"v")
    batch.put_version(b"k\x00v1", b"v")
    store.close()
    # Opened again while the batch lives: RocksDB refused ("lock hold by current process")
    # while the batch held the versions column family's handle.
    other = TableStore(tmp_path / "s").open()
    assert other.get(b"k") is None
    other.close()


def test_a_batch_made_before_a_reset_is_not_committed_after_it(tmp_path: Path) -> None:
    store = TableStore(tmp_path / "s").open()
    kept = store.batch()
    kept.put(b"a", b"1")
    kept.positions[0] = 5
    store.commit(kept)
    stale = store.batch()
    stale.put(b"b", b"2")
    stale.positions[0] = 9
    store.destroy()  # a task reset / a rebuild: the state starts again
    store.open()
    store.commit(stale)
    assert store.get(b"b") is None
    assert store.positions() == {}
    fresh = store.batch()
    fresh.put(b"c", b"3")
    fresh.positions[0] = 1
    store.commit(fresh)
    assert (store.get(b"c"), store.positions()) == (b"3", {0: 1})
    store.close()
