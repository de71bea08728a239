"""A windowed stateful query's watermark: the minimum over its source partitions, as in Flink.

Stage 1 (:mod:`agents.repartition`) interleaves the source partitions into each repartition
partition in whatever order it fetched them: after a restart it may read one source partition far
ahead of the others. A task's watermark taken as "the largest event time seen" would then outrun
the slower partitions and make their records late — results that depend on a crash. So:

- stage 1 keeps each source partition's largest event time (:class:`SourceTimes`) and, at most
  every :data:`MARK_INTERVAL_S` per partition, appends a **marker** to *every* repartition
  partition: a record without key or value whose header ``tablestream.watermark`` holds the
  source partition, the number of source partitions, its largest event time and whether it is
  idle. Markers follow the records they describe in each repartition partition, so a task that
  reads a marker has read every record of that source partition it will get up to that time;
- each task (:mod:`agents.tasks`) keeps a :class:`SourceClock`: per source partition the largest
  event time of its records and markers. The query's watermark is the minimum over the source
  partitions that are not idle, minus the out-of-orderness (``CompiledQuery.set_clock``); until
  every source partition was heard of, it holds. Records of one source partition reach a task in
  that partition's order, so whether a record is late no longer depends on how partitions
  interleave — only on the order within its own partition.
- **Idleness** (Flink's ``withIdleness``): a source partition stage 1 has read to its end and
  that brought no record for ``TABLESTREAM_WATERMARK_IDLE_TIMEOUT`` seconds is marked idle and
  left out of the minimum, so a silent partition cannot hold windows open forever; its next record
  makes it active again (records older than the watermark by then are late, as in Flink).
- **Exactly-once**: a source partition's markers go into that partition's transaction, after the
  records they describe (:func:`agents.transactional.mark_in_transactions`).
- **Not repartitioned** (:class:`PartitionClock`): a windowed query whose group key reads a joined
  table reads every source partition in one query; each record's own partition counts, with the
  same idleness and pausing, and no markers.
- **Bounded skew**: stage 1 pauses fetching a source partition whose event time runs more than
  ``max_skew_ms`` ahead of the slowest active one, and resumes it when the others caught up: the
  state a task holds while it waits for the slowest partition stays bounded.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

#: Header of a marker record in a repartition topic (see the module docstring).
H_WATERMARK = "tablestream.watermark"
_MARK = struct.Struct(">iiq?")
#: At most one marker per source partition and this many seconds (and one on every change of
#: its idleness).
MARK_INTERVAL_S = 0.5
#: State entry of a task's clock (beside the query's own state entries).
CLOCK_KEY = "@clock"
_NO_TIME = -(2**63)


@dataclass(frozen=True, slots=True)
class Mark:
    """What a marker says: source partition ``partition`` (of ``partitions``) reached event time
    ``time`` (None: no record yet), and whether it is idle."""

    partition: int
    partitions: int
    time: int | None
    idle: bool

    def pack(self) -> bytes:
        t = _NO_TIME if self.time is None else self.time
        return _MARK.pack(self.partition, self.partitions, t, self.idle)


def mark_of(headers: Sequence[tuple[str, bytes]] | None) -> Mark | None:
    """The marker a repartition record is, or None for a data record."""
    if not headers:
        return None
    for name, value in headers:
        if name == H_WATERMARK and len(value) == _MARK.size:
            p, n, t, idle = _MARK.unpack(value)
            return Mark(p, n, None if t == _NO_TIME else t, idle)
    return None


@dataclass(slots=True)
class _Source:
    event_time: int | None = None
    last_record: float = field(default_factory=time.monotonic)
    idle: bool = False
    sent: tuple[int | None, bool] | None = None  # what its last marker said
    next_mark: float = 0.0


class SourceTimes:
    """Stage 1: each source partition's largest event time, the markers due, the partitions to
    pause. ``idle_timeout`` in seconds; ``max_skew_ms`` None: no pausing."""

    def __init__(self, idle_timeout: float, max_skew_ms: int | None) -> None:
        self.idle_timeout = idle_timeout
        self.max_skew_ms = max_skew_ms
        self.sources: dict[int, _Source] = {}

    def first_mark(self, partition: int, partitions: int) -> Mark | None:
        """The marker to write before the first record of source ``partition`` this stage 1
        forwards (None: it forwarded some already, or the partition count is unknown): it tells
        every task the number of source partitions before that record arrives, so the task's
        watermark follows the records from the first one on, instead of holding until the next
        marker (which made no record of the first batch late)."""
        if partition in self.sources or partitions <= 0:
            return None
        self.sources[partition] = _Source(sent=(None, False))
        return Mark(partition, partitions, None, False)

    def observe(self, partition: int, t: int | None) -> None:
        """A record of source ``partition`` with event time ``t`` was written."""
        src = self.sources.get(partition)
        if src is None:
            src = self.sources[partition] = _Source()
        src.last_record = time.monotonic()
        src.idle = False
        if t is not None and (src.event_time is None or t > src.event_time):
            src.event_time = t

    def marks(self, partitions: int, caught_up: Iterable[int], now: float) -> list[Mark]:
        """The markers due now for source partitions ``range(partitions)``: those whose time or
        idleness changed, at most every :data:`MARK_INTERVAL_S`, and a partition read to its end
        (``caught_up``) that brought nothing for the idle timeout becomes idle."""
        ended = set(caught_up)
        out = []
        for p in range(partitions):
            src = self.sources.get(p)
            if src is None:
                if p not in ended:
                    continue  # not assigned here, or not read yet: says nothing
                src = self.sources[p] = _Source()
            if p in ended and now - src.last_record >= self.idle_timeout:
                src.idle = True
            said = (src.event_time, src.idle)
            if said != src.sent and (now >= src.next_mark or src.sent is None or src.idle):
                src.sent, src.next_mark = said, now + MARK_INTERVAL_S
                out.append(Mark(p, partitions, src.event_time, src.idle))
        return out

    def ahead(self) -> set[int]:
        """Source partitions whose event time is more than the allowed skew ahead of the slowest
        active partition (to pause); empty while any active one has no time yet."""
        if self.max_skew_ms is None:
            return set()
        active = {p: s.event_time for p, s in self.sources.items() if not s.idle}
        if not active or any(t is None for t in active.values()):
            return set()
        low = min(t for t in active.values() if t is not None)
        return {p for p, t in active.items() if t is not None and t > low + self.max_skew_ms}

    def forget(self, partitions: Iterable[int]) -> None:
        """Partitions revoked from this worker: their new owner speaks for them."""
        for p in partitions:
            self.sources.pop(p, None)


def ended(
    positions: Mapping[int, tuple[int, int | None]],
    owned: Mapping[int, Any],
    highwater: Callable[[Any], int | None],
) -> list[int]:
    """Of the ``owned`` partitions (partition -> TopicPartition), those read to their end.
    ``positions`` maps a partition to (next offset to process, high-watermark when it was last
    fetched), as :attr:`agents.metrics.QueryStats.partitions` does; ``highwater`` gives the
    consumer's latest one (a silent partition's is updated by every fetch, records or not)."""
    out = []
    for p, tp in owned.items():
        position, seen = positions.get(p, (0, None))
        hw = highwater(tp)
        hw = seen if hw is None else hw
        if hw is not None and position >= hw:
            out.append(p)
    return out


class Pausable(Protocol):
    def pause(self, *partitions: Any) -> None: ...

    def resume(self, *partitions: Any) -> None: ...


class SkewPause:
    """Pauses the source partitions that run ahead (:meth:`SourceTimes.ahead`) and resumes them
    once the others caught up — only those it paused itself (exactly-once pauses fenced
    partitions for its own reasons)."""

    def __init__(self) -> None:
        self.paused: dict[int, Any] = {}

    def apply(self, consumer: Pausable, ahead: set[int], owned: Mapping[int, Any]) -> None:
        """``owned``: partition -> TopicPartition of those this worker reads (and may pause)."""
        for p in [p for p, tp in self.paused.items() if owned.get(p) != tp]:
            del self.paused[p]  # revoked or fenced: not ours to resume any more
        for p, tp in owned.items():
            if p in ahead and p not in self.paused:
                consumer.pause(tp)
                self.paused[p] = tp
            elif p not in ahead and p in self.paused:
                consumer.resume(self.paused.pop(p))

    def release(self, consumer: Pausable) -> None:
        """Resume everything paused here (its clock is replaced: a rebuild)."""
        if self.paused:
            consumer.resume(*self.paused.values())
        self.paused.clear()


class SourceClock:
    """Stage 2, one per task: the event time every source partition reached (see the module
    docstring). :meth:`observe` is the query's clock (``CompiledQuery.set_clock``)."""

    def __init__(self) -> None:
        self.partitions: int | None = None
        self.times: dict[int, int] = {}
        self.idle: set[int] = set()
        #: Repartition offset -> source partition of the batch being run (set by the task).
        self.origins: dict[int, int] = {}
        self.dirty = False
        self._low: int | None = None
        self._stale = True

    def mark(self, mark: Mark) -> None:
        self.partitions = mark.partitions
        if mark.time is not None and mark.time > self.times.get(mark.partition, _NO_TIME):
            self.times[mark.partition] = mark.time
        if mark.idle:
            self.idle.add(mark.partition)
        else:
            self.idle.discard(mark.partition)
        self.dirty = self._stale = True

    def observe(self, partition: int, offset: int, t: int) -> int | None:
        """A record's event time ``t`` (at repartition ``offset``; ``partition`` is not a source
        partition here); the event time every active source partition reached, or None while one
        was never heard of."""
        sp = self.origins.get(offset)
        return self._observe(sp, t)

    def _observe(self, sp: int | None, t: int) -> int | None:
        if sp is not None and (t > self.times.get(sp, _NO_TIME) or sp in self.idle):
            if t > self.times.get(sp, _NO_TIME):
                self.times[sp] = t
            self.idle.discard(sp)
            self.dirty = self._stale = True
        if self._stale:
            self._low = self._compute()
            self._stale = False
        return self._low

    def _compute(self) -> int | None:
        n = self.partitions
        if n is None:
            return None
        active = [p for p in range(n) if p not in self.idle]
        if not active:  # every partition idle: time goes as far as any went
            return max(self.times.values(), default=None)
        if any(p not in self.times for p in active):
            return None
        return min(self.times[p] for p in active)

    # -- persistence with the task's state ------------------------------------------------------
    def state(self) -> dict[str, Any]:
        self.dirty = False
        return {
            "n": self.partitions,
            "times": {str(p): t for p, t in self.times.items()},
            "idle": sorted(self.idle),
        }

    def restore(self, value: Any) -> None:
        if not isinstance(value, dict):
            raise ValueError(f"clock state is {type(value).__name__}, not a dict")
        n = value.get("n")
        self.partitions = None if n is None else int(n)
        self.times = {int(p): int(t) for p, t in (value.get("times") or {}).items()}
        self.idle = {int(p) for p in value.get("idle") or ()}
        self._stale = True


class PartitionClock:
    """A windowed query that is not repartitioned (:mod:`agents.agent`) reads every source
    partition itself, in one compiled query: the same rule without markers. Each record's own
    partition counts in a :class:`SourceClock`; :meth:`step` (after every fetch) marks the
    partitions read to their end that stayed silent for the idle timeout idle, and pauses those
    running more than the allowed skew ahead of the slowest (:class:`SkewPause`)."""

    def __init__(self, idle_timeout: float, max_skew_ms: int | None) -> None:
        self.times = SourceTimes(idle_timeout, max_skew_ms)
        self.clock = SourceClock()
        self.skew = SkewPause()
        self._next = 0.0

    def observe(self, partition: int, offset: int, t: int) -> int | None:
        """The query's clock (``CompiledQuery.set_clock``): ``partition`` is a source one."""
        self.times.observe(partition, t)
        return self.clock._observe(partition, t)

    def step(
        self,
        consumer: Pausable,
        positions: Mapping[int, tuple[int, int | None]],
        owned: Mapping[int, Any],
        highwater: Callable[[Any], int | None],
        now: float,
    ) -> None:
        """Idleness and pausing, at most every half :data:`MARK_INTERVAL_S`. ``owned``:
        partition -> TopicPartition of every source partition (all are read here)."""
        if now < self._next:
            return
        self._next = now + MARK_INTERVAL_S / 2
        if self.clock.partitions is None:
            self.clock.partitions = len(owned)
        for mark in self.times.marks(len(owned), ended(positions, owned, highwater), now):
            self.clock.mark(mark)
        self.skew.apply(consumer, self.times.ahead(), owned)

    def dirty_state(self) -> dict[str, Any]:
        """The clock's entry for the query's state write batch, when it changed."""
        return {CLOCK_KEY: self.clock.state()} if self.clock.dirty else {}

    def restore(self, items: Iterable[tuple[str, Any]]) -> list[tuple[str, Any]]:
        """Stored state entries: the clock's loaded here, the query's returned."""
        out = []
        for key, value in items:
            if key == CLOCK_KEY:
                self.clock.restore(value)
            else:
                out.append((key, value))
        return out
