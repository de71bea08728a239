"""Persistent state of a stateful query (GROUP BY, windows) and the source offsets it reflects.

The store is a :class:`tables.store.TableStore` (RocksDB through rocksdict): state entries in the
default column family, and — in the same write batch — the next offset and a fingerprint of the
last record applied per source partition. So after any crash the stored offsets describe exactly
the stored state. On start the stored offsets are verified the way table loaders verify theirs
(:mod:`tables.loader`): the last applied record must still be in the topic, byte for byte;
otherwise the state is dropped and rebuilt from the earliest offset.

Values are written as MessagePack (:func:`encode_value`, msgspec's encoder): a query's state is
JSON-safe by contract — ``None``, ``bool``, 64-bit ``int``, ``float``, ``str``, lists and
string-keyed dicts (:mod:`sql.runtime.state` encodes everything else into those) — which
MessagePack keeps exactly, at about a quarter of pickle's cost. (It would write a tuple as a
list and a Decimal as a string: no state entry holds either; ``tests/unit/agents/test_state.py``
round-trips the operators' entries.) A value MessagePack cannot hold (a string with a lone
surrogate) is pickled, and stores written before hold pickles: :func:`decode_value` reads both.
A pickle (protocol 2 or later) begins with ``0x80`` and its protocol number; the only MessagePack
value beginning with ``0x80`` is the empty map, one byte long.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import msgspec
from aiokafka import TopicPartition

from tables.store import Fingerprint, StoreBatch, TableStore

E_DIFFERS = "record {topic}[{partition}]@{offset} differs from the one the state reflects"
E_RENUMBERED = "{topic}[{partition}] restarted numbering (first offset {first} < {offset})"
A = TypeVar("A", bound="Applied")
E_SHORT = "{topic}[{partition}] ends at {highwater}, before the stored offset {position}"


_pack = msgspec.msgpack.Encoder().encode
_unpack = msgspec.msgpack.Decoder().decode


def encode_value(value: Any) -> bytes:
    """A state value's stored bytes: MessagePack, or a pickle for what it cannot hold."""
    try:
        return _pack(value)
    except (TypeError, ValueError, OverflowError):
        return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)


def decode_value(raw: bytes) -> Any:
    """Inverse of :func:`encode_value`; also reads the pickles of stores written before.
    Raises ValueError (or pickle's errors) for bytes that are neither."""
    if raw[:1] == b"\x80" and len(raw) > 1:
        return pickle.loads(raw)
    return _unpack(raw)


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
    """One stateful query's store under ``path``; entries as :func:`encode_value` writes them."""

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
            yield k.decode(), decode_value(v)

    def batch(self, dirty: Mapping[str, Any], last: Mapping[int, Applied]) -> StoreBatch:
        """State changes and progress of one processed batch, to commit once outputs are acked.

        Values are serialized now: the query goes on mutating its live state meanwhile.
        """
        batch = self.store.batch()
        # Untracked: the write batch's own put and delete (no row keys to remember here).
        put, delete = batch.raw_writes()
        pack = _pack
        for key, value in dirty.items():
            if value is None:
                delete(key.encode())
            else:
                try:
                    raw = pack(value)
                except (TypeError, ValueError, OverflowError):
                    raw = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
                put(key.encode(), raw)
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
