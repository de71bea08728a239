"""A RocksDB-backed versioned table driven through the loader's apply path, without a broker."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core import codec
from tables.apply import Applier
from tables.keys import key_bytes
from tables.protocol import Change, Key, Value
from tables.reference import ReferenceTable
from tables.spec import TableSpec


@dataclass
class Rec:
    key: bytes | None
    value: bytes | None
    offset: int
    timestamp: int
    partition: int = 0
    topic: str = "t"


class AppliedTable:
    """``put(key, value, timestamp)`` goes through :class:`Applier` into a real RocksDB store.

    Reads are the :class:`ReferenceTable`'s own (its store opened by hand, no loader running).
    """

    def __init__(self, path: Path, spec: TableSpec) -> None:
        self.table = ReferenceTable(spec, path, "127.0.0.1:1")
        self.state = self.table._state
        self.state.store.open()
        self.applier = Applier(spec.key_field, self.state.decode, self.state.versions)
        self.offset = self.state.store.positions().get(0, 0)

    def put_many(self, items: list[tuple[Key, Value | None, int]]) -> list[Change]:
        records = []
        for key, value, timestamp in items:
            raw = None if value is None else codec.dumps(value)
            records.append(Rec(key_bytes(key), raw, self.offset, timestamp))
            self.offset += 1
        batch = self.state.batch()
        result = self.applier.apply(records, self.state.store, batch, want_changes=True)
        self.state.commit(batch)
        for change in result.changes:
            self.state.feed.publish(change)
        return result.changes

    def put(self, key: Key, value: Value | None, timestamp: int = 0) -> Change | None:
        changes = self.put_many([(key, value, timestamp)])
        return changes[0] if changes else None

    def delete(self, key: Key, timestamp: int = 0) -> Change | None:
        return self.put(key, None, timestamp)

    def reopen(self) -> None:
        self.state.store.close()
        self.state.store.open()

    def close(self) -> None:
        self.state.store.close()
