"""Bounded skew between the partitions a table loader reads.

A versioned table's retention and its as-of answers follow event time across partitions (stream
time is the newest timestamp the table has seen): a partition read far ahead of another — a
broker that ignores the per-partition fetch size hands a loader one partition's whole backlog at
once — would move stream time past versions the slower partitions still need, and make a table
answer as of a time it has not read everywhere yet.

So, as stage 1 of a windowed query does (:mod:`agents.watermarks`), a loader keeps each
partition's largest record timestamp and, per fetched batch:

- the slowest partition that still has records to read sets the bound ``low + max_skew_ms``;
  a partition read to its end holds nobody back (waiting for it brings nothing);
- records of a partition beyond the bound are not applied: the partition is sought back to the
  first of them and paused, and resumed once the slowest came within the bound;
- a partition with records to read that has given none yet (a broker may answer one partition's
  backlog first) holds the others — they are cut and paused until it gives its first records —
  but only for :data:`UNKNOWN_HOLD_S`: one that gives nothing (only transaction markers left, a
  slow leader) cannot stop the load.

A partition with known time that sets the bound is never paused, so loading makes progress.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

#: Seconds a partition with records to read but no known time yet holds the others back.
UNKNOWN_HOLD_S = 5.0


class Timed(Protocol):
    @property
    def offset(self) -> int: ...

    @property
    def timestamp(self) -> int: ...


@dataclass(slots=True)
class Cut:
    """What to do with one fetched batch: the records to apply per partition, where to seek the
    partitions whose tail was held back, and which partitions to pause and resume."""

    keep: dict[Any, Sequence[Any]] = field(default_factory=dict)
    seek: dict[Any, int] = field(default_factory=dict)
    pause: list[Any] = field(default_factory=list)
    resume: list[Any] = field(default_factory=list)


class PartitionSkew:
    """Per loader: each partition's largest applied timestamp; see the module docstring."""

    def __init__(self, max_skew_ms: int | None) -> None:
        self.max_skew_ms = max_skew_ms
        #: Partition (TopicPartition) -> largest timestamp applied.
        self.times: dict[Any, int] = {}
        #: Paused partition -> timestamp of its first record held back (None: held for a
        #: partition whose time is unknown).
        self.held: dict[Any, int | None] = {}
        #: Partition with records to read and no known time -> when it was first seen so.
        self.unknown: dict[Any, float] = {}

    def cut(
        self,
        fetched: Mapping[Any, Sequence[Timed]],
        behind: Callable[[Any], bool],
        partitions: Sequence[Any],
        now: float | None = None,
    ) -> Cut:
        """The batch ``fetched`` cut to the bound. ``behind(tp)``: ``tp`` has records left to
        read (before this batch); ``partitions``: every partition the loader reads."""
        now = time.monotonic() if now is None else now
        out = Cut(keep=dict(fetched))
        if self.max_skew_ms is None or len(partitions) < 2:
            return out
        reach = dict(self.times)
        peak = {tp: max(map(_TIMESTAMP, msgs)) for tp, msgs in fetched.items() if msgs}
        for tp, t in peak.items():
            reach[tp] = max(reach.get(tp, _NEVER), t)
        slow = [tp for tp in partitions if tp not in self.held and behind(tp)]
        waiting = False
        for tp in slow:
            if tp in reach:
                self.unknown.pop(tp, None)
            elif now - self.unknown.setdefault(tp, now) < UNKNOWN_HOLD_S:
                waiting = True
        known = [reach[tp] for tp in slow if tp in reach]
        bound = _NEVER if waiting else min(known) + self.max_skew_ms if known else None
        for tp, msgs in fetched.items():
            n = len(msgs)
            if bound is not None and n and peak[tp] > bound:
                n = next(i for i, m in enumerate(msgs) if m.timestamp > bound)
            if n < len(msgs):
                out.keep[tp] = msgs[:n]
                out.seek[tp] = msgs[n].offset
                if tp not in self.held:
                    out.pause.append(tp)
                self.held[tp] = None if waiting else msgs[n].timestamp
            if n:
                t = peak[tp] if n == len(msgs) else max(m.timestamp for m in msgs[:n])
                self.times[tp] = max(self.times.get(tp, _NEVER), t)
        for tp, first in list(self.held.items()):
            if waiting or tp in out.seek:
                continue
            if bound is None or first is None or first <= bound:
                out.resume.append(tp)
                del self.held[tp]
        return out

    def reset(self) -> None:
        """The loader starts over (a rebuild): nothing is known, nothing stays paused."""
        self.times.clear()
        self.held.clear()
        self.unknown.clear()


_NEVER = -(2**63)
_TIMESTAMP = operator.attrgetter("timestamp")
