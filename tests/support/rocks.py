"""A real RocksDB-backed :class:`~tables.reference.ReferenceTable` fed without a broker.

The table is built exactly as a worker builds it (same store, applier, change feed and index
registry); only the Kafka consumer is replaced by :meth:`RocksFeeder.apply`, which runs the loader's
own apply step (``Applier.apply`` → ``TableStore.commit`` → publish the changes) on records made
here. Tests and benchmarks use it to exercise SQL on the production storage path.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import codec
from tables.apply import Applier
from tables.keys import key_bytes
from tables.reference import ReferenceTable
from tables.spec import TableSpec


@dataclass(slots=True)
class Record:
    """A fetched record as the loaders and agents see it (:class:`tables.apply.RecordLike`)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None


class RocksFeeder:
    """Writes rows (and tombstones) into a ReferenceTable's RocksDB store, publishing changes."""

    def __init__(self, spec: TableSpec, data_dir: Path) -> None:
        # Not started: no consumer is ever created; the store is opened here instead.
        self.table = ReferenceTable(spec, data_dir, "127.0.0.1:1")
        self._state = self.table._state
        self._state.store.open()
        self._state.store.set_topic(spec.topic)
        self._applier = Applier(spec.key_field, self._state.decode)
        self._offset = 0

    def apply(self, changes: Iterable[tuple[Any, dict[str, Any] | None]]) -> int:
        """Apply ``(key, row or None)`` pairs as one batch; returns the number of records."""
        records = []
        for key, row in changes:
            value = None if row is None else codec.dumps(row)
            records.append(Record(self.table.topic, 0, self._offset, 0, key_bytes(key), value))
            self._offset += 1
        state = self._state
        batch = state.batch()
        feed = state.feed
        result = self._applier.apply(records, state.store, batch, bool(feed), feed.tail)
        assert not result.malformed, result.malformed
        state.commit(batch)
        feed.publish_batch(result.changes)
        return len(records)

    def put(self, key: Any, row: dict[str, Any] | None) -> None:
        self.apply([(key, row)])

    def close(self) -> None:
        self._state.store.close()
