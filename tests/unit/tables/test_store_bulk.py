"""A store a cold restore fills is opened with bulk-load memtables (no memtable bloom filter)
and gets the filter back for the memtables after the restore; a store reopened keeps it."""

from __future__ import annotations

from pathlib import Path

from tables.store import TableStore


def memtable_bloom(path: Path) -> str:
    """``memtable_prefix_bloom_size_ratio`` of the rows' column family in the newest OPTIONS
    file RocksDB wrote (it writes one at open and after each ``set_options``)."""
    newest = max(path.glob("OPTIONS-*"), key=lambda p: int(p.name.split("-")[1]))
    text = newest.read_text()
    rows = text[text.index('[CFOptions "default"]') :]
    line = next(x for x in rows.splitlines() if "memtable_prefix_bloom_size_ratio" in x)
    return line.split("=")[1].strip()


def test_a_new_store_loads_without_the_memtable_bloom_and_gets_it_back(tmp_path: Path) -> None:
    store = TableStore(tmp_path / "s").open(bulk_if_new=True)
    try:
        assert float(memtable_bloom(store.path)) == 0.0
        store.begin_restore()
        batch = store.batch()
        batch.put(b"k", b"v")
        store.commit(batch)
        assert store.end_restore()
        assert float(memtable_bloom(store.path)) == 0.02
        store.persist_restore()
        assert store.get(b"k") == b"v"
    finally:
        store.close()
    reopened = TableStore(tmp_path / "s").open(bulk_if_new=True)  # not new: no bulk
    try:
        assert float(memtable_bloom(reopened.path)) == 0.02
        assert reopened.get(b"k") == b"v"
    finally:
        reopened.close()


def test_a_store_opened_without_bulk_keeps_the_memtable_bloom(tmp_path: Path) -> None:
    """Other writers (a query's state) never end a restore: their memtables keep the filter."""
    store = TableStore(tmp_path / "s").open()
    try:
        assert float(memtable_bloom(store.path)) == 0.02
    finally:
        store.close()
