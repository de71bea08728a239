"""The records a table loader fetches and what applying a batch of them gives.

:class:`RawRecord` is what the loaders read (aiokafka's own C record), :class:`Malformed` a record
that cannot be applied or processed (what a dead letter is made of), :class:`BatchResult` the
changes and counts of one applied batch. Shared by :mod:`tables.apply` and :mod:`tables.keys_only`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from core.fetch import RawRecord as RawRecord
from tables.protocol import Change
from tables.store import Fingerprint, StoreBatch


class RecordLike(RawRecord, Protocol):
    """A record that says where it comes from (aiokafka's ``ConsumerRecord``, a test's)."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...


#: Fetched records grouped by where they come from: (topic, partition, records in offset order).
Parts = Iterable[tuple[str, int, Sequence[RawRecord]]]


def by_partition(records: Iterable[RecordLike]) -> list[tuple[str, int, list[RawRecord]]]:
    """``records`` as :data:`Parts`, in their order (each run of one partition a part)."""
    parts: list[tuple[str, int, list[RawRecord]]] = []
    run: list[RawRecord] | None = None
    where: tuple[str, int] | None = None
    for rec in records:
        if (rec.topic, rec.partition) != where:
            where = (rec.topic, rec.partition)
            run = []
            parts.append((rec.topic, rec.partition, run))
        assert run is not None
        run.append(rec)
    return parts


@dataclass(frozen=True, slots=True)
class Malformed:
    """A record that cannot be applied or processed, with where it came from and why: what a
    dead letter is made of (:mod:`tables.deadletter`)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    reason: str
    #: The original record's headers (kept on its dead letter).
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(slots=True)
class BatchResult:
    changes: list[Change] = field(default_factory=list)
    malformed: list[Malformed] = field(default_factory=list)
    inserts: int = 0
    updates: int = 0
    deletes: int = 0
    records: int = 0


def progress(batch: StoreBatch, partition: int, last: RawRecord) -> None:
    """The partition's next offset and the fingerprint of its last record, into ``batch``."""
    batch.positions[partition] = last.offset + 1
    batch.fingerprints[partition] = Fingerprint.of(last.offset, last.key, last.value)


def malformed(topic: str, partition: int, rec: RawRecord, reason: str) -> Malformed:
    """``rec`` of ``topic``/``partition`` as a :class:`Malformed` record, with its headers."""
    headers = tuple(getattr(rec, "headers", None) or ())
    return Malformed(
        topic, partition, rec.offset, rec.timestamp, rec.key, rec.value, reason, headers
    )
