"""RocksDB storage of one table, through rocksdict.

Rows live in the default column family as ``key text -> original JSON bytes``. The ``meta`` column
family holds what the loader has applied: the next offset per partition, a fingerprint of the last
applied record per partition, the row count, the table version and stream time. The ``versions``
column family holds the history of versioned tables (:mod:`tables.versions_store`). Rows, history
and progress go to RocksDB in one write batch, so after any crash the stored offsets describe
exactly the stored rows and versions. A batch's writes are a
:class:`~tables.store_batch.StoreBatch`, the rocksdict tuning a
:class:`~tables.store_options.StoreOptions` (both importable from here).

A cold restore (:meth:`TableStore.begin_restore`) writes without the write-ahead log: a durable
``restoring`` mark goes first, the rows follow, and only once every column family was flushed
to its files is the mark removed (:meth:`TableStore.persist_restore`). A store opened with the
mark still there was cut short mid-restore — whatever reached disk is a mix of column families
flushed at different points — and is rebuilt (:meth:`TableStore.restore_interrupted`).
"""

from __future__ import annotations

import logging
import shutil
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

from rocksdict import ColumnFamily, Options, Rdict, RdictIter, WriteBatch, WriteOptions

from tables.store_batch import Fingerprint as Fingerprint
from tables.store_batch import StoreBatch as StoreBatch
from tables.store_options import MEMTABLE_BLOOM
from tables.store_options import StoreOptions as StoreOptions

_META = "meta"
VERSIONS_CF = "versions"
_COUNT = b"count"
_VERSION = b"version"
_STREAM_TIME = b"stream_time"
_HISTORY = b"history"
_TOPIC = b"topic"
_SYNCED = b"synced_at"
_RESTORING = b"restoring"
_POS = b"pos/"
_FP = b"fp/"
_I64 = struct.Struct(">q")
_FP_STRUCT = struct.Struct(">qI")


#: Keys a restore keeps in memory to tell inserts from updates (~80 bytes each); beyond, it
#: asks RocksDB.
RESTORED_KEYS_MAX = 2_000_000

logger = logging.getLogger(__name__)
W_STALE = "store at %s: a batch made on opening %d not committed (opened %d times since)"


class TableStore:
    """One table's RocksDB database under ``path``."""

    def __init__(self, path: Path, options: StoreOptions | None = None) -> None:
        self.path = path
        self._options = options or StoreOptions()
        self._db: Rdict | None = None
        self._meta_handle: ColumnFamily | None = None
        self._meta: Rdict | None = None
        self._versions_handle: ColumnFamily | None = None
        self._versions: Rdict | None = None
        #: An iterator over ``versions`` shared by as-of reads until the next write (creating one
        #: costs more than the seek it serves: ~10 µs); see :meth:`history_iter`.
        self._history_it: RdictIter | None = None
        #: How many times the database was opened (see StoreBatch.opened).
        self.openings = 0
        #: The serial of the last batch committed (:attr:`StoreBatch.serial`; 0: none yet).
        self.committed = 0
        #: Writes skip the write-ahead log (a cold restore in progress, see the module docstring).
        self._restoring = False
        #: Restored rows maybe only in memtables: the ``restoring`` mark stays until flushed.
        self._unflushed = False
        #: Every row key of a restore into an empty store, while it runs (see restored_keys).
        self._restored: set[bytes] | None = None
        #: Opened new, with bulk-load memtables (StoreOptions.to_options): set back after a load.
        self._bulk = False
        #: Told the version keys each commit wrote, after the write (a cache of past versions).
        self.history_written: Callable[[list[bytes]], None] | None = None
        self._count = 0
        self._version = 0
        self._stream_time = 0

    # -- lifecycle --------------------------------------------------------------------------------
    def open(self, bulk_if_new: bool = False) -> TableStore:
        """Opens the database (created if missing). ``bulk_if_new``: a database not there yet is
        about to be filled by a cold restore — bulk-load memtables until :meth:`end_restore`."""
        if self._db is None:
            self._bulk = bulk_if_new and not (self.path / "CURRENT").exists()
            self.path.mkdir(parents=True, exist_ok=True)
            opts = self._options.to_options(bulk=self._bulk)
            history = self._options.history_options()
            families = {_META: Options(raw_mode=True), VERSIONS_CF: history}
            self._db = Rdict(str(self.path), opts, column_families=families)
            self.openings += 1
            self._meta = self._db.get_column_family(_META)
            self._meta_handle = self._db.get_column_family_handle(_META)
            self._versions = self._db.get_column_family(VERSIONS_CF)
            self._versions_handle = self._db.get_column_family_handle(VERSIONS_CF)
            self._count = self._meta_int(_COUNT)
            self._version = self._meta_int(_VERSION)
            self._stream_time = self._meta_int(_STREAM_TIME)
        return self

    def _meta_int(self, key: bytes) -> int:
        assert self._meta is not None
        raw = self._meta.get(key)
        return int(_I64.unpack(raw)[0]) if raw else 0

    def close(self) -> None:
        db, self._db = self._db, None
        self._history_it = None  # before the database it reads closes
        if db is not None:
            self._meta = None
            self._meta_handle = None
            self._versions = None
            self._versions_handle = None
            db.close()
            self._count = 0
            self._version = 0
            self._stream_time = 0
            self._restoring = self._unflushed = False
            self._restored = None

    def destroy(self) -> None:
        """Close and delete everything on disk (local state that cannot be trusted)."""
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)
        self._count = 0

    def versions_handle(self) -> ColumnFamily:
        """The ``versions`` column family's handle, for a batch's writes (the store must be open:
        a None handle would write to the default column family)."""
        handle = self._versions_handle
        if handle is None:
            raise RuntimeError(f"store at {self.path} is not open")
        return handle

    @property
    def is_open(self) -> bool:
        return self._db is not None

    @property
    def db(self) -> Rdict:
        if self._db is None:
            raise RuntimeError(f"store at {self.path} is not open")
        return self._db

    # -- reads ------------------------------------------------------------------------------------
    # Reads on a closed store (before start, after stop, mid-rebuild) see an empty table: readers
    # that need the rows wait for readiness, and inspection views must not fail meanwhile.
    def get(self, key: bytes) -> bytes | None:
        if self._db is None:
            return None
        value: bytes | None = self._db.get(key)
        return value

    def multi_get(self, keys: list[bytes]) -> list[bytes | None]:
        return cast(list[bytes | None], self.db.get(cast(list[Any], keys)))

    def items(self, from_key: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        if self._db is None:
            return iter(())
        items = self._db.items(from_key=from_key) if from_key else self._db.items()
        return cast(Iterator[tuple[bytes, bytes]], iter(items))

    def iter_keys(self) -> Iterator[bytes]:
        if self._db is None:
            return iter(())
        return cast(Iterator[bytes], iter(self._db.keys()))

    def _meta_items(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        assert self._meta is not None
        for k, v in cast(Iterator[tuple[bytes, bytes]], iter(self._meta.items(from_key=prefix))):
            if not k.startswith(prefix):
                break
            yield k, v

    @property
    def count(self) -> int:
        return self._count

    @property
    def version(self) -> int:
        """The table version: one more for every change applied (and every version written)."""
        return self._version

    @property
    def stream_time(self) -> int:
        """The newest record timestamp applied (ms)."""
        return self._stream_time

    @property
    def versions(self) -> Rdict | None:
        """The ``versions`` column family (None while closed)."""
        return self._versions

    def history_iter(self) -> RdictIter | None:
        """An iterator over ``versions`` that sees every committed write (None while closed).

        Shared until the next :meth:`commit` (every write of this store goes through it), so
        as-of reads between two batches pay one seek each, not an iterator's creation too. Its
        position is the last caller's: seek before reading.
        """
        it = self._history_it
        if it is None:
            cf = self._versions
            if cf is None:
                return None
            it = self._history_it = cf.iter()
        return it

    def history_mode(self) -> str | None:
        """What :meth:`set_history_mode` stored: whether these rows come with history."""
        assert self._meta is not None
        raw = self._meta.get(_HISTORY)
        return raw.decode() if raw else None

    def set_history_mode(self, mode: str) -> None:
        assert self._meta is not None
        self._meta[_HISTORY] = mode.encode()

    def topic(self) -> str | None:
        assert self._meta is not None
        raw = self._meta.get(_TOPIC)
        return raw.decode() if raw else None

    def positions(self) -> dict[int, int]:
        return {int(k[len(_POS) :]): _I64.unpack(v)[0] for k, v in self._meta_items(_POS)}

    def fingerprints(self) -> dict[int, Fingerprint]:
        out: dict[int, Fingerprint] = {}
        for k, v in self._meta_items(_FP):
            offset, crc = _FP_STRUCT.unpack(v)
            out[int(k[len(_FP) :])] = Fingerprint(offset, crc)
        return out

    def bytes_on_disk(self) -> int:
        return sum(f.stat().st_size for f in self.path.glob("*") if f.is_file())

    # -- writes -----------------------------------------------------------------------------------
    def batch(self, track: bool = False, values: bool = False) -> StoreBatch:
        """A batch on the current progress; ``track`` keeps the row keys it writes, ``values``
        their bytes too."""
        return StoreBatch(self._count, self._version, self._stream_time, self, track, values)

    def commit(self, batch: StoreBatch) -> None:
        if batch.opened != self.openings:
            # Made before this store was reset or rebuilt: its writes and positions describe
            # state that no longer exists (replaying the source rebuilds them).
            logger.warning(W_STALE, self.path, batch.opened, self.openings)
            return
        if not batch.restored:
            self._restored = None  # rows written without it: the set no longer says what is here
        wb = batch.wb
        cf = self._meta_handle
        for partition, position in batch.positions.items():
            wb.put(_POS + str(partition).encode(), _I64.pack(position), cf)
        for partition, fp in batch.fingerprints.items():
            wb.put(_FP + str(partition).encode(), _FP_STRUCT.pack(fp.offset, fp.crc), cf)
        wb.put(_COUNT, _I64.pack(batch.count), cf)
        if batch.version != self._version:
            wb.put(_VERSION, _I64.pack(batch.version), cf)
        if batch.stream_time != self._stream_time:
            wb.put(_STREAM_TIME, _I64.pack(batch.stream_time), cf)
        self.db.write(wb)
        # An iterator reads the database as it was when created: the next read takes a new one.
        self._history_it = None
        if batch.history and self.history_written is not None:
            self.history_written(batch.history)
        self._count = batch.count
        self._version = batch.version
        self._stream_time = batch.stream_time
        self.committed = batch.serial

    # -- cold restore: writes without the write-ahead log ------------------------------------------
    def restore_interrupted(self) -> bool:
        """Whether a restore began on this database and never reached :meth:`persist_restore`
        (a crash, or a kill): its files may hold rows without their offsets or the reverse."""
        assert self._meta is not None
        return self._meta.get(_RESTORING) is not None

    @property
    def restoring(self) -> bool:
        return self._restoring

    def begin_restore(self) -> None:
        """Write without the write-ahead log from now on (about a third of a commit's cost, see
        docs/BENCHMARKS.md), after a durable mark that :meth:`restore_interrupted` finds."""
        db = self.db
        mark = WriteBatch(raw_mode=True)
        mark.put(_RESTORING, b"1", self._meta_handle)
        synced = WriteOptions()
        synced.sync = True
        db.set_write_options(synced)
        db.write(mark)
        no_wal = WriteOptions()
        # A property at run time; rocksdict's stub declares a method.
        no_wal.disable_wal = True  # type: ignore[method-assign,assignment]
        db.set_write_options(no_wal)
        self._restoring = self._unflushed = True
        self._restored = set() if self._count == 0 else None

    @property
    def restored_keys(self) -> set[bytes] | None:
        """The row keys a restore into an empty store has written so far, for a writer that
        adds its own (and sets :attr:`StoreBatch.restored`): whether a key is new is then a set
        lookup, not a RocksDB read (a tenth of a restore's CPU). None outside a restore, past
        :data:`RESTORED_KEYS_MAX` keys (memory), and once any batch was written without it."""
        keys = self._restored
        if keys is not None and len(keys) > RESTORED_KEYS_MAX:
            keys = self._restored = None
        return keys

    def end_restore(self) -> bool:
        """Later writes go through the write-ahead log again; True while the restored rows still
        wait for :meth:`persist_restore` (call it next, off the event loop: it flushes)."""
        self._restored = None
        if self._restoring and self._db is not None:
            self._db.set_write_options(WriteOptions())
            self._restoring = False
        if self._bulk and self._db is not None:
            # The memtables after the restore's flush (persist_restore) filter point reads again.
            self._db.set_options(MEMTABLE_BLOOM)
            self._bulk = False
        return self._unflushed

    def persist_restore(self) -> None:
        """Flush every column family to its files, then drop the ``restoring`` mark (after
        :meth:`end_restore`; thread-safe). A crash before the mark is gone rebuilds the table;
        the mark's removal need not be synced (surviving, it only costs that rebuild)."""
        db, meta, versions = self._db, self._meta, self._versions
        if not self._unflushed or self._restoring or db is None:
            return
        assert meta is not None
        assert versions is not None
        db.flush()
        versions.flush()
        meta.flush()
        del meta[_RESTORING]
        self._unflushed = False

    def compact(self) -> None:
        """Full compaction (thread-safe in RocksDB; callers run it off the event loop)."""
        db = self._db
        if db is not None:
            db.compact_range(None, None)
            versions = self._versions
            if versions is not None:
                versions.compact_range(None, None)

    def set_topic(self, topic: str) -> None:
        assert self._meta is not None
        self._meta[_TOPIC] = topic.encode()

    def synced_at(self) -> int | None:
        """Wall-clock ms when the rows last matched the whole topic (None: never recorded)."""
        assert self._meta is not None
        raw = self._meta.get(_SYNCED)
        return int(_I64.unpack(raw)[0]) if raw else None

    def set_synced_at(self, ms: int) -> None:
        assert self._meta is not None
        self._meta[_SYNCED] = _I64.pack(ms)
