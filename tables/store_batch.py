"""What one batch writes to a table's store (:class:`StoreBatch`: rows, history and progress,
committed atomically by :meth:`tables.store.TableStore.commit`) and how a partition's last applied
record is recognised (:class:`Fingerprint`)."""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rocksdict import WriteBatch

if TYPE_CHECKING:
    from tables.store import TableStore


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """Identifies the last record a partition applied: its offset and a CRC of key and value."""

    offset: int
    crc: int

    @staticmethod
    def of(offset: int, key: bytes | None, value: bytes | None) -> Fingerprint:
        crc = zlib.crc32(value or b"", zlib.crc32(b"\x00", zlib.crc32(key or b"")))
        return Fingerprint(offset, crc)


#: Every batch's own number: :attr:`TableStore.committed` names the last one committed.
_SERIALS = itertools.count(1)


class StoreBatch:
    """Row writes plus progress, committed atomically by :meth:`TableStore.commit`."""

    __slots__ = (
        "_store",
        "count",
        "fingerprints",
        "history",
        "opened",
        "positions",
        "restored",
        "serial",
        "stream_time",
        "values",
        "version",
        "wb",
        "written",
    )

    def __init__(
        self,
        count: int,
        version: int,
        stream_time: int,
        store: TableStore,
        track: bool = False,
        values: bool = False,
    ) -> None:
        #: The RocksDB write batch (the store adds the progress to it on commit).
        self.wb = WriteBatch(raw_mode=True)
        # The store, not its column family handle: a handle keeps the database open — and its
        # LOCK held — for as long as a pending batch lives, so a task reset or reopened meanwhile
        # failed with "lock hold by current process" (the WriteBatch itself keeps no handle).
        self._store = store
        #: Which opening of the store the batch was made on: one made before a reset or a
        #: rebuild (destroy + open) is not committed into the fresh database.
        self.opened = store.openings
        #: Which batch this is: a writer that remembers what it wrote checks that *its* batch
        #: was the last committed (a version alone can match another batch of the same size).
        self.serial = next(_SERIALS)
        #: The row keys written, when tracked (a table with cached rows drops them after commit).
        self.written: list[bytes] | None = [] if track or values else None
        #: The bytes written, in step with :attr:`written` (None: a delete), when asked for (a
        #: row cache filling its bytes level from the writes, :meth:`tables.rowcache.RowCache.
        #: written`). A writer that extends ``written`` itself extends this too.
        self.values: list[bytes | None] | None = [] if values else None
        #: Its row keys were added to :attr:`TableStore.restored_keys` by the writer.
        self.restored = False
        #: The version keys written or deleted (a cache of past versions drops their keys).
        self.history: list[bytes] = []
        self.count = count
        self.version = version
        self.stream_time = stream_time
        self.positions: dict[int, int] = {}
        self.fingerprints: dict[int, Fingerprint] = {}

    def put(self, key: bytes, value: bytes) -> None:
        self.wb.put(key, value)
        if self.written is not None:
            self.written.append(key)
            if self.values is not None:
                self.values.append(value)

    def delete(self, key: bytes) -> None:
        self.wb.delete(key)
        if self.written is not None:
            self.written.append(key)
            if self.values is not None:
                self.values.append(None)

    def raw_writes(self) -> tuple[Callable[[bytes, bytes], None], Callable[[bytes], None]]:
        """The write batch's own put and delete, untracked: for a caller that adds the keys it
        wrote to :attr:`written` itself (the bulk path, one call per record saved)."""
        return self.wb.put, self.wb.delete

    def put_version(self, key: bytes, value: bytes) -> None:
        self.wb.put(key, value, self._store.versions_handle())
        self.history.append(key)

    def delete_version(self, key: bytes) -> None:
        self.wb.delete(key, self._store.versions_handle())
        self.history.append(key)
