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
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from aiokafka import TopicPartition

from agents.process import BatchCounts, OutputLike, PerPartition, RawRecord
from agents.repartition import origin_of
from agents.state import QueryState, Verifier
from agents.watermarks import CLOCK_KEY, Mark, SourceClock, mark_of
from core import gcpause
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


#: The task's query and the processor running batches through it (a :class:`BatchProcessor`, or
#: one in front of it: :class:`agents.copartition.CheckedProcessor`).
Compile = Callable[[], tuple[CompiledQuery, PerPartition[OutputLike]]]


class AggregateTask:
    """The query's state for one repartition partition; see the module docstring."""

    def __init__(
        self,
        name: str,
        tp: TopicPartition,
        path: Path,
        compile: Compile,
        clock: bool = True,
        *,
        repartitioned: bool = True,
    ) -> None:
        self.name = name
        #: Reads a repartition topic (stage 1's copies with their origin, watermark markers);
        #: False: a co-partitioned query's source topic, whose records are taken as they are.
        self.repartitioned = repartitioned
        self.tp = tp
        self.state = QueryState(path, tp.topic)
        self._compile = compile
        self.query: CompiledQuery | None = None
        self.processor: PerPartition[OutputLike] | None = None
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
        #: The watermark over the source partitions (windowed queries; :mod:`agents.watermarks`):
        #: off when stage 1 writes no markers (``watermark_per_source`` off), then the task's own
        #: stream time.
        self.clock = SourceClock()
        self._use_clock = clock
        #: Seconds between two state writes (0: every batch). Between them the query's dirty
        #: state and the source offsets advanced accumulate, written at once by the next batch
        #: due (or :meth:`flush`): a window updated in ten batches is written once. The stored
        #: state then reflects an earlier offset than the group's committed one, which a later
        #: owner replays quietly (no outputs): at-least-once only (exactly-once commits the
        #: state with each transaction).
        self.write_interval = 0.0
        self._written_at = 0.0
        self._advanced: dict[int, int] = {}
        #: The last record applied and not yet in a written state batch (None: all written).
        self._unwritten: TaskRecord | None = None

    def open(self) -> bool:
        """Open the store and load it; True when there is state to resume from (then seek to
        :attr:`seek_offset`), False when the partition must be replayed from its beginning."""
        self.state.open()
        query = self._new_query()
        positions = self.state.positions()
        pos = positions.get(self.tp.partition, 0)
        if pos <= 0:
            return False
        entries: list[tuple[str, Any]] = []
        origins: dict[int, int] = {}
        try:
            for key, value in self.state.items():
                if key == CLOCK_KEY:
                    self.clock.restore(value)
                elif key.startswith(ORIGIN_PREFIX):
                    origins[int(key[len(ORIGIN_PREFIX) :])] = int(value)
                else:
                    entries.append((key, value))
            query.restore_state(entries)
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

    def _new_query(self) -> CompiledQuery:
        query, self.processor = self._compile()
        if self._use_clock:
            query.set_clock(self.clock.observe)
        self.query = query
        return query

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
        self.clock = SourceClock()
        self._new_query()
        self.verifier = Verifier()
        self.origins = {}
        self.position = 0
        self._advanced = {}
        self._unwritten = None

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
        with gcpause.paused():
            return self._run_batch(msgs, output)

    def _run_batch(
        self, msgs: Sequence[TaskRecord], output: OutputLike
    ) -> tuple[BatchCounts, StoreBatch | None]:
        processor = self.processor
        assert processor is not None
        assert self.query is not None
        if not msgs:
            return BatchCounts(), None
        origins, clock = self.origins, self.clock
        clock.origins = {}
        # Records and watermark markers in topic order: a marker counts after the records before
        # it (it describes them), never before.
        steps: list[list[TaskRecord] | Mark] = []
        run: list[TaskRecord] = []
        advanced: dict[int, int] = {}  # source partition -> its new highest offset
        fresh = 0
        if not self.repartitioned:
            # A source topic: no copies to skip, no markers (no per-record header reads).
            run = msgs if isinstance(msgs, list) else list(msgs)
            fresh = len(run)
            msgs_loop: Sequence[TaskRecord] = ()
        else:
            msgs_loop = msgs
        for rec in msgs_loop:
            if rec.value is None:
                mark = mark_of(rec.headers)
                if mark is not None:
                    steps += [run, mark]
                    run = []
                    continue
            origin = origin_of(rec.headers)
            if origin is not None:
                sp, so = origin
                if so <= origins.get(sp, -1):
                    self.duplicates += 1
                    continue
                origins[sp] = advanced[sp] = so
                clock.origins[rec.offset] = sp
            run.append(rec)
            fresh += 1
        steps.append(run)
        counts = BatchCounts()
        for step in steps:
            if isinstance(step, Mark):
                clock.mark(step)
            elif step:
                self._run(step, output, counts)
        last = msgs[-1]
        counts.last = {self.tp.partition: last}
        self.position = last.offset + 1
        self.records_in += fresh
        self._advanced.update(advanced)
        self._unwritten = last
        if self.write_interval:
            now = time.monotonic()
            if now - self._written_at < self.write_interval:
                return counts, None
            self._written_at = now
        return counts, self._state_batch()

    def _state_batch(self) -> StoreBatch:
        """Every change since the last state batch, with the last record applied."""
        assert self.query is not None
        assert self._unwritten is not None
        dirty = self.query.dirty_state()
        dirty.update({f"{ORIGIN_PREFIX}{sp}": so for sp, so in self._advanced.items()})
        self._advanced = {}
        clock = self.clock
        if clock.dirty:
            dirty[CLOCK_KEY] = clock.state()
        last, self._unwritten = self._unwritten, None
        return self.state.batch(dirty, {self.tp.partition: last})

    def flush(self) -> None:
        """Write what the state batches skipped (``write_interval``) now: only once every
        output of the records applied was acknowledged (the agent drained its deliveries)."""
        if self._unwritten is not None and self.query is not None and self.state.store.is_open:
            self.state.commit(self._state_batch())
            self._written_at = time.monotonic()

    def _run(self, fresh: list[TaskRecord], output: OutputLike, counts: BatchCounts) -> None:
        processor = self.processor
        assert processor is not None
        topic, partition = self.tp.topic, self.tp.partition
        quiet = 0
        if fresh[0].offset < self.quiet_until:
            quiet = _below(fresh, self.quiet_until)
            processor.run_partition(topic, partition, fresh[:quiet], _DISCARD, BatchCounts())
            self.quiet += quiet
        processor.run_partition(topic, partition, fresh[quiet:], output, counts)
        counts.records_in += quiet

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
