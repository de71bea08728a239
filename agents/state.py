"""Persistent state of a stateful query (GROUP BY, windows) and the source offsets it reflects.

The store is a :class:`tables.store.TableStore` (RocksDB through rocksdict): state entries in the
default column family, and — in the same write batch — the next offset and a fingerprint of the
last record applied per source partition. So after any crash the stored offsets describe exactly
the stored state. On start the stored offsets are verified the way table loaders verify theirs
(:mod:`tables.loader`): the last applied record must still be in the topic, byte for byte;
otherwise the state is dropped and rebuilt from the earliest offset.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from aiokafka import TopicPartition

from tables.store import Fingerprint, StoreBatch, TableStore

E_DIFFERS = "record {topic}[{partition}]@{offset} differs from the one the state reflects"
E_RENUMBERED = "{topic}[{partition}] restarted numbering (first offset {first} < {offset})"
A = TypeVar("A", bound="Applied")
E_SHORT = "{topic}[{partition}] ends at {highwater}, before the stored offset {position}"


class Applied(Protocol):
    """The last record a batch applied in a partition (its offset and bytes are stored)."""

    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


class StateMismatch(Exception):
    """Stored offsets do not describe this topic: the local state is not trusted."""

    def __init__(self, message: str, partition: int | None = None) -> None:
        super().__init__(message)
        #: The partition whose state does not fit (None: not known).
        self.partition = partition


class QueryState:
    """One stateful query's store under ``path``; entries are pickled (internal, local data)."""

    def __init__(self, path: Path, topic: str) -> None:
        self.store = TableStore(path)
        self.topic = topic

    def open(self) -> None:
        store = self.store
        store.open()
        stored = store.topic()
        if stored is not None and stored != self.topic:
            store.destroy()
            store.open()
        store.set_topic(self.topic)

    def close(self) -> None:
        self.store.close()

    def reset(self) -> None:
        """Drop everything (rebuild from the earliest offset follows)."""
        self.store.destroy()
        self.open()

    def positions(self) -> dict[int, int]:
        return self.store.positions()

    def fingerprints(self) -> dict[int, Fingerprint]:
        return self.store.fingerprints()

    def items(self) -> Iterator[tuple[str, Any]]:
        for k, v in self.store.items():
            yield k.decode(), pickle.loads(v)

    def batch(self, dirty: Mapping[str, Any], last: Mapping[int, Applied]) -> StoreBatch:
        """State changes and progress of one processed batch, to commit once outputs are acked.

        Values are serialized now: the query goes on mutating its live state meanwhile.
        """
        batch = self.store.batch()
        for key, value in dirty.items():
            if value is None:
                batch.delete(key.encode())
            else:
                batch.put(key.encode(), pickle.dumps(value, pickle.HIGHEST_PROTOCOL))
        for partition, rec in last.items():
            batch.positions[partition] = rec.offset + 1
            batch.fingerprints[partition] = Fingerprint.of(rec.offset, rec.key, rec.value)
        return batch

    def commit(self, batch: StoreBatch) -> None:
        if self.store.is_open:
            self.store.commit(batch)


class Verifier:
    """Checks the first records read after a restart against the stored fingerprints."""

    def __init__(self) -> None:
        self.pending: dict[TopicPartition, Fingerprint] = {}

    def expect(self, tp: TopicPartition, fp: Fingerprint) -> None:
        self.pending[tp] = fp

    def check(self, tp: TopicPartition, msgs: Sequence[A]) -> Sequence[A]:
        """The records to process (the re-read last-applied one removed); raises on mismatch."""
        fp = self.pending.pop(tp, None)
        if fp is None or not msgs:
            if fp is not None:
                self.pending[tp] = fp
            return msgs
        first = msgs[0]
        if first.offset == fp.offset:
            if Fingerprint.of(first.offset, first.key, first.value) != fp:
                raise StateMismatch(
                    E_DIFFERS.format(topic=tp.topic, partition=tp.partition, offset=first.offset),
                    tp.partition,
                )
            return msgs[1:]
        if first.offset < fp.offset:
            raise StateMismatch(
                E_RENUMBERED.format(
                    topic=tp.topic, partition=tp.partition, first=first.offset, offset=fp.offset
                ),
                tp.partition,
            )
        return msgs

    @staticmethod
    def check_highwater(tp: TopicPartition, highwater: int | None, position: int) -> None:
        if highwater is not None and highwater < position:
            raise StateMismatch(
                E_SHORT.format(
                    topic=tp.topic, partition=tp.partition, highwater=highwater, position=position
                ),
                tp.partition,
            )
