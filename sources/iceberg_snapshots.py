"""One Iceberg snapshot's rows, loaded once, and the snapshot log that says which was current when.

An Iceberg point read is a scan, so a snapshot is read once — projected to the declared columns
by field id (:mod:`sources.iceberg_schema`), filtered by the table's row filter (pyiceberg prunes
partitions and skips files by their statistics with it) — into a key → row map: a dict, or a
local RocksDB store when the snapshot has more rows than the table's ``spill_rows``. Lookups
then read no file and no metadata.
"""

from __future__ import annotations

import bisect
import datetime as dt
import pickle
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from sources.iceberg_schema import Projection
from tables.keys import key_text
from tables.protocol import Key, Value


class Rows(Protocol):
    """A loaded snapshot: key text → row (declared column names)."""

    snapshot_id: int

    def get(self, key: str) -> Value | None: ...

    def __len__(self) -> int: ...

    def items(self) -> Iterator[tuple[Key, Value]]: ...

    def close(self) -> None: ...


class MemoryRows:
    __slots__ = ("duplicates", "rows", "snapshot_id")

    def __init__(self, snapshot_id: int, rows: dict[str, Value], duplicates: int = 0) -> None:
        self.snapshot_id = snapshot_id
        self.rows = rows
        self.duplicates = duplicates

    def get(self, key: str) -> Value | None:
        return self.rows.get(key)

    def __len__(self) -> int:
        return len(self.rows)

    def items(self) -> Iterator[tuple[Key, Value]]:
        return iter(list(self.rows.items()))

    def close(self) -> None:
        pass


class RocksRows:
    """A snapshot too large for memory (``spill_rows``): rows pickled in a local RocksDB store
    of this process's own (written once here, deleted on close; never read from elsewhere)."""

    def __init__(self, snapshot_id: int, path: Path, names: tuple[str, ...]) -> None:
        from rocksdict import Rdict

        self.snapshot_id = snapshot_id
        self.path = path
        self.names = names
        self.duplicates = 0
        self._size = 0
        shutil.rmtree(path, ignore_errors=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db: Any = Rdict(str(path))

    def put_all(self, keys: list[str], rows: list[tuple[Any, ...]]) -> None:
        from rocksdict import WriteBatch

        batch = WriteBatch()
        for k, row in zip(keys, rows, strict=True):
            batch.put(k.encode(), pickle.dumps(row, protocol=5))
        self._db.write(batch)
        self._size = len(set(keys))  # a key written twice holds its last row
        self.duplicates = len(keys) - self._size

    def get(self, key: str) -> Value | None:
        raw = self._db.get(key.encode())
        if raw is None:
            return None
        return dict(zip(self.names, pickle.loads(raw), strict=True))

    def __len__(self) -> int:
        return self._size

    def items(self) -> Iterator[tuple[Key, Value]]:
        for k, raw in self._db.items():
            yield k.decode(), dict(zip(self.names, pickle.loads(raw), strict=True))

    def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.close()
            shutil.rmtree(self.path, ignore_errors=True)


def load(
    table: Any,
    proj: Projection,
    key: str,
    row_filter: str | None,
    spill_rows: int,
    spill_dir: Path,
) -> Rows:
    """Scan snapshot ``proj.snapshot_id`` of the pyiceberg ``table`` into rows (blocking)."""
    from pyiceberg.expressions import AlwaysTrue

    scan = table.scan(
        snapshot_id=proj.snapshot_id,
        row_filter=row_filter or AlwaysTrue(),
        selected_fields=proj.select or ("*",),
    )
    arrow = scan.to_arrow()
    columns = [arrow.column(name).to_pylist() for name in proj.select]
    names = proj.names + proj.nulls
    nulls = (None,) * len(proj.nulls)
    zoned = [proj.names.index(c) for c in proj.zoned]
    tuples: list[tuple[Any, ...]] = [t + nulls for t in zip(*columns, strict=True)]
    if zoned:
        tuples = [_naive(t, zoned) for t in tuples]
    if key in proj.nulls:  # the key itself came later than this snapshot: no row has one
        return MemoryRows(proj.snapshot_id, {})
    ki = names.index(key)
    keys = [key_text(t[ki]) if t[ki] is not None else None for t in tuples]
    pairs = [(k, t) for k, t in zip(keys, tuples, strict=True) if k is not None]
    if len(pairs) > spill_rows:
        rocks = RocksRows(proj.snapshot_id, spill_dir / str(proj.snapshot_id), names)
        rocks.put_all([k for k, _ in pairs], [t for _, t in pairs])
        return rocks
    rows = {k: dict(zip(names, t, strict=True)) for k, t in pairs}
    return MemoryRows(proj.snapshot_id, rows, len(pairs) - len(rows))


def _naive(t: tuple[Any, ...], zoned: list[int]) -> tuple[Any, ...]:
    out = list(t)
    for i in zoned:
        v = out[i]
        if isinstance(v, dt.datetime) and v.tzinfo is not None:
            out[i] = v.astimezone(dt.UTC).replace(tzinfo=None)
    return tuple(out)


class SnapshotLog:
    """Which snapshot was current from when (the table's snapshot log, oldest first)."""

    __slots__ = ("ids", "times")

    def __init__(self, entries: list[tuple[int, int]]) -> None:
        entries = sorted(entries)
        self.times = [t for t, _ in entries]
        self.ids = [s for _, s in entries]

    @classmethod
    def of(cls, metadata: Any) -> SnapshotLog:
        """From table metadata: its snapshot log, minus snapshots since expired; a writer that
        keeps no log gives the snapshots by their commit time."""
        known = {s.snapshot_id for s in metadata.snapshots}
        entries = [(e.timestamp_ms, e.snapshot_id) for e in metadata.snapshot_log]
        if not entries:
            entries = [(s.timestamp_ms, s.snapshot_id) for s in metadata.snapshots]
        return cls([(t, s) for t, s in entries if s in known])

    def at(self, timestamp: int) -> int | None:
        """The snapshot current at ``timestamp`` (epoch ms); None before the first."""
        i = bisect.bisect_right(self.times, timestamp) - 1
        return self.ids[i] if i >= 0 else None

    def since(self, snapshot_id: int) -> int | None:
        """When ``snapshot_id`` became current (its first entry), None when not in the log."""
        for t, s in zip(self.times, self.ids, strict=True):
            if s == snapshot_id:
                return t
        return None

    @property
    def first(self) -> int | None:
        return self.times[0] if self.times else None

    def __len__(self) -> int:
        return len(self.ids)
