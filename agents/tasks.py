"""One repartition partition of a stateful query: a task, as in Kafka Streams.

A task owns, for its partition only: a compiled query (so its own aggregate state and its own
watermark — Kafka Streams' stream time per task), a RocksDB store under
``data_dir/queries/<query>/p<N>`` holding that state with the partition's next offset and the
fingerprint of the last record applied (:mod:`agents.state`, one write batch, written once the
outputs are acknowledged), and the highest source offset applied per source partition.

Opening verifies the store the way table loaders do: the last applied record must still be in the
topic, byte for byte, and the topic must not end before the stored offset — else (or with no
store) the partition is replayed from its earliest offset. Copies of source records that stage 1
wrote again (:mod:`agents.repartition`: a crash or a rebalance re-reads from the last committed
offset) carry a source offset at or below the highest applied one and are skipped, so the state
counts every source record once.

A task that replays records its partition's previous owner already processed — below the offset
that owner committed to the group, which it did only once their outputs were acknowledged —
rebuilds its state from them without writing their outputs again (as Kafka Streams restores a
task without re-emitting): a rebalance without a crash repeats no output.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from aiokafka import TopicPartition

from agents.process import BatchCounts, BatchProcessor, OutputLike, RawRecord
from agents.repartition import origin_of
from agents.state import QueryState, Verifier
from sql import CompiledQuery, StateError
from tables.apply import Malformed
from tables.store import StoreBatch

logger = logging.getLogger(__name__)

#: State entries of the task itself (not the query's): highest source offset per source partition.
ORIGIN_PREFIX = "@origin/"
W_STATE = "query %r: stored state of %s[%d] does not load (%s); replaying the partition"


class TaskRecord(RawRecord, Protocol):
    """A fetched repartition record (aiokafka's C record or its ``ConsumerRecord``)."""

    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


Compile = Callable[[], tuple[CompiledQuery, BatchProcessor]]


class AggregateTask:
    """The query's state for one repartition partition; see the module docstring."""

    def __init__(self, name: str, tp: TopicPartition, path: Path, compile: Compile) -> None:
        self.name = name
        self.tp = tp
        self.state = QueryState(path, tp.topic)
        self._compile = compile
        self.query: CompiledQuery | None = None
        self.processor: BatchProcessor | None = None
        self.verifier = Verifier()
        #: Source partition -> highest source offset applied.
        self.origins: dict[int, int] = {}
        #: Next offset the stored state reflects (0: nothing applied).
        self.position = 0
        self.records_in = 0
        self.duplicates = 0
        #: Records below this offset only rebuild state: their outputs were written before.
        self.quiet_until = 0
        self.quiet = 0

    def open(self) -> bool:
        """Open the store and load it; True when there is state to resume from (then seek to
        :attr:`seek_offset`), False when the partition must be replayed from its beginning."""
        self.state.open()
        self.query, self.processor = self._compile()
        positions = self.state.positions()
        pos = positions.get(self.tp.partition, 0)
        if pos <= 0:
            return False
        entries: list[tuple[str, Any]] = []
        origins: dict[int, int] = {}
        try:
            for key, value in self.state.items():
                if key.startswith(ORIGIN_PREFIX):
                    origins[int(key[len(ORIGIN_PREFIX) :])] = int(value)
                else:
                    entries.append((key, value))
            self.query.restore_state(entries)
        except (StateError, pickle.UnpicklingError, ValueError, TypeError) as exc:
            logger.warning(W_STATE, self.name, self.tp.topic, self.tp.partition, exc)
            self.reset()
            return False
        self.origins = origins
        self.position = pos
        fp = self.state.fingerprints().get(self.tp.partition)
        if fp is not None:
            self.verifier.expect(self.tp, fp)
        return True

    @property
    def seek_offset(self) -> int:
        """Where reading resumes: the last applied record (re-read to verify it) when its
        fingerprint is stored, else the stored position."""
        fp = self.verifier.pending.get(self.tp)
        return fp.offset if fp is not None else self.position

    def reset(self) -> None:
        """Drop the stored and the live state: the partition is replayed from its beginning."""
        self.state.reset()
        if self.query is not None:
            self.query.close()
        self.query, self.processor = self._compile()
        self.verifier = Verifier()
        self.origins = {}
        self.position = 0

    def check_highwater(self, highwater: int | None) -> None:
        """Raises :class:`agents.state.StateMismatch` when the topic ends before the state."""
        Verifier.check_highwater(self.tp, highwater, self.position)

    def verify(self, msgs: Sequence[TaskRecord]) -> Sequence[TaskRecord]:
        """The fetched records to run (the re-read last applied record dropped); raises
        StateMismatch when it is not the record the state reflects."""
        return self.verifier.check(self.tp, msgs) if self.verifier.pending else msgs

    def run(
        self, msgs: Sequence[TaskRecord], output: OutputLike
    ) -> tuple[BatchCounts, StoreBatch | None]:
        """Verified records of this partition through the query; the state write batch to
        commit once the outputs are acknowledged."""
        processor = self.processor
        assert processor is not None
        assert self.query is not None
        if not msgs:
            return BatchCounts(), None
        origins = self.origins
        fresh: list[TaskRecord] = []
        advanced: dict[int, int] = {}  # source partition -> its new highest offset
        for rec in msgs:
            origin = origin_of(rec.headers)
            if origin is not None:
                sp, so = origin
                if so <= origins.get(sp, -1):
                    continue
                origins[sp] = advanced[sp] = so
            fresh.append(rec)
        self.duplicates += len(msgs) - len(fresh)
        counts = BatchCounts()
        topic, partition = self.tp.topic, self.tp.partition
        quiet = 0
        if fresh and fresh[0].offset < self.quiet_until:
            quiet = _below(fresh, self.quiet_until)
            processor.run_partition(topic, partition, fresh[:quiet], _DISCARD, BatchCounts())
            self.quiet += quiet
        processor.run_partition(topic, partition, fresh[quiet:], output, counts)
        counts.records_in += quiet
        last = msgs[-1]
        counts.last = {self.tp.partition: last}
        self.position = last.offset + 1
        self.records_in += len(fresh)
        dirty = self.query.dirty_state()
        dirty.update({f"{ORIGIN_PREFIX}{sp}": so for sp, so in advanced.items()})
        return counts, self.state.batch(dirty, counts.last)

    def close(self) -> None:
        self.state.close()
        if self.query is not None:
            self.query.close()
            self.query = None


def _below(records: Sequence[TaskRecord], offset: int) -> int:
    """How many of ``records`` (in offset order) are below ``offset``."""
    n = 0
    for rec in records:
        if rec.offset >= offset:
            break
        n += 1
    return n


class _Discard:
    """An output that drops everything: outputs of records replayed only to rebuild state."""

    def append(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> None:
        pass

    def dead_letter(self, topic: str, item: Malformed, source: str) -> None:
        pass

    def appender(self, topic: str, partition: int) -> Callable[[bytes | None, bytes | None], None]:
        return _drop


def _drop(key: bytes | None, value: bytes | None) -> None:
    pass


_DISCARD = _Discard()
