"""The watermark over source partitions: skewed interleaving makes no record late, idleness,
markers, pausing what runs ahead — the mechanism of agents/watermarks.py without a broker."""

from __future__ import annotations

from typing import Any

import pytest

from agents.watermarks import Mark, PartitionClock, SkewPause, SourceClock, SourceTimes, mark_of
from sql.errors import LateRecordError
from sql.query import CompiledQuery, compile_query

SQL = """\
CREATE STREAM s (k VARCHAR, ts BIGINT) WITH (topic='s', timestamp='ts', out_of_orderness='1s');
SELECT k, window_start, COUNT(*) AS n FROM s WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY k
EMIT CHANGES
"""


def skewed() -> list[tuple[int, int]]:
    """(source partition, event time): partition 0's 100 s read before partition 1's, as stage 1
    writes them after a restart that read one partition far ahead."""
    return [(0, t * 1000) for t in range(100)] + [(1, t * 1000) for t in range(100)]


def run(query: CompiledQuery, clock: SourceClock | None) -> tuple[dict[Any, int], int]:
    final: dict[Any, int] = {}
    late = 0
    for offset, (sp, ts) in enumerate(skewed()):
        if clock is not None:
            clock.origins[offset] = sp
        try:
            rows = query.process({"k": "a", "ts": ts}, offset=offset)
        except LateRecordError:
            late += 1
            continue
        for r in rows:
            final[r["window_start"]] = r["n"]
    return final, late


def test_the_minimum_over_source_partitions_makes_no_record_late() -> None:
    query = compile_query(SQL, {})
    clock = SourceClock()
    query.set_clock(clock.observe)
    for p in (0, 1):
        clock.mark(Mark(p, 2, None, idle=False))
    final, late = run(query, clock)
    assert late == 0
    assert final == {w * 10_000: 20 for w in range(10)}
    assert query.watermark == 99_000 - 1_000  # both partitions reached 99 s


def test_without_it_the_largest_event_time_makes_the_slower_partition_late() -> None:
    final, late = run(compile_query(SQL, {}), None)
    assert late == 90  # what a crash used to do to a windowed result
    assert final[0] == 10


def test_the_watermark_holds_until_every_source_partition_was_heard_of() -> None:
    clock = SourceClock()
    assert clock.observe(-1, 0, 5_000) is None  # no marker yet: the number of partitions unknown
    clock.mark(Mark(0, 2, 7_000, idle=False))
    clock.origins = {1: 0}
    assert clock.observe(-1, 1, 9_000) is None  # partition 1 never heard of
    clock.mark(Mark(1, 2, 3_000, idle=False))
    assert clock.observe(-1, 2, 9_000) == 3_000
    clock.mark(Mark(1, 2, None, idle=True))  # idle: left out
    assert clock.observe(-1, 3, 9_000) == 9_000
    clock.origins = {4: 1}
    assert clock.observe(-1, 4, 4_000) == 4_000  # its record makes it active again
    restored = SourceClock()
    restored.restore(clock.state())
    assert restored.observe(-1, 5, 0) == 4_000
    with pytest.raises(ValueError, match="not a dict"):
        restored.restore([1])


def test_markers_idleness_and_pausing_in_stage_1() -> None:
    times = SourceTimes(idle_timeout=10.0, max_skew_ms=60_000)
    times.observe(0, 100_000)
    times.observe(1, 20_000)
    marks = times.marks(3, caught_up=[], now=times.sources[0].last_record)
    assert marks == [Mark(0, 3, 100_000, False), Mark(1, 3, 20_000, False)]
    assert mark_of([("x", b""), ("tablestream.watermark", marks[0].pack())]) == marks[0]
    assert mark_of([("tablestream.origin", b"12345678")]) is None
    assert times.ahead() == {0}  # 80 s ahead of partition 1: paused
    later = times.sources[0].last_record + 11
    # Partition 1 read to its end and silent past the timeout: idle, said at once; partition 2
    # (assigned, read to its end, never a record) too; nothing new to say for partition 0.
    marks = times.marks(3, caught_up=[1, 2], now=later)
    assert marks == [Mark(1, 3, 20_000, True), Mark(2, 3, None, True)]
    assert times.ahead() == set()  # the slowest active partition is 0 itself
    assert times.marks(3, caught_up=[1, 2], now=later + 1) == []


def test_a_first_marker_before_a_partitions_first_record() -> None:
    times = SourceTimes(idle_timeout=10.0, max_skew_ms=None)
    assert times.first_mark(0, 0) is None  # partition count unknown: says nothing
    assert times.first_mark(0, 2) == Mark(0, 2, None, False)
    assert times.first_mark(0, 2) is None  # once per partition
    times.observe(0, 5_000)
    assert times.first_mark(0, 2) is None
    # The regular markers go on from what the first one said.
    now = times.sources[0].last_record
    assert times.marks(2, caught_up=[], now=now) == [Mark(0, 2, 5_000, False)]
    # A task that read the first marker follows partition 0's records (partition 1: idle).
    clock = SourceClock()
    clock.mark(Mark(0, 2, None, False))
    clock.mark(Mark(1, 2, None, True))
    clock.origins = {7: 0}  # repartition offset 7 came from source partition 0
    assert clock.observe(0, 7, 500) == 500


class Consumer:
    """What :class:`SkewPause` needs of a consumer: pause and resume (records the calls)."""

    def __init__(self) -> None:
        self.paused: set[str] = set()

    def pause(self, *tps: str) -> None:
        self.paused.update(tps)

    def resume(self, *tps: str) -> None:
        self.paused.difference_update(tps)


def test_a_query_reading_every_partition_itself_idleness_and_pausing() -> None:
    """:class:`PartitionClock`: each record's own partition counts; a silent partition read to
    its end turns idle after the timeout; a partition far ahead pauses until the others come."""
    pc = PartitionClock(idle_timeout=5.0, max_skew_ms=30_000)
    query = compile_query(SQL, {})
    query.set_clock(pc.observe)
    owned = {0: "tp0", 1: "tp1", 2: "tp2"}
    consumer = Consumer()
    positions = {0: (100, None), 1: (50, None), 2: (0, None)}
    hw = {"tp0": 200, "tp1": 50, "tp2": 0}.get
    pc.step(consumer, positions, owned, hw, now=0.0)
    for offset, (p, ts) in enumerate([(0, 1_000), (1, 2_000), (0, 60_000), (0, 61_000)]):
        query.process({"k": "a", "ts": ts}, partition=p, offset=offset)
    assert query.watermark is not None
    assert query.watermark < 0  # partition 2 never heard of: the watermark holds
    query.process({"k": "a", "ts": 3_000}, partition=2, offset=0)
    assert query.watermark == 1_000  # partition 1's 2 s, less the out-of-orderness
    start = pc.times.sources[0].last_record
    pc.step(consumer, positions, owned, hw, now=start + 1)
    assert consumer.paused == {"tp0"}  # 59 s ahead of partition 1
    # Partitions 1 and 2 are read to their end and silent past the timeout: idle, left out.
    pc.step(consumer, positions, owned, hw, now=start + 6)
    assert pc.clock.idle == {1, 2}
    assert consumer.paused == set()  # the slowest active partition is 0 itself
    query.process({"k": "a", "ts": 62_000}, partition=0, offset=4)
    assert query.watermark == 61_000  # partition 0's alone
    state = pc.dirty_state()
    restored = PartitionClock(5.0, None)
    assert restored.restore([("w", 1), *state.items()]) == [("w", 1)]
    assert restored.clock.times == {0: 62_000, 1: 2_000, 2: 3_000}
    assert restored.clock.idle == {1, 2}


def test_skew_pause_resumes_only_what_it_paused() -> None:
    consumer = Consumer()
    consumer.pause("fenced")  # paused by someone else (exactly-once): never resumed here
    skew = SkewPause()
    skew.apply(consumer, {0}, {0: "tp0", 1: "tp1"})
    assert consumer.paused == {"fenced", "tp0"}
    skew.apply(consumer, {0}, {1: "tp1"})  # tp0 revoked: no longer ours to resume
    assert skew.paused == {}
    skew.apply(consumer, {1}, {1: "tp1"})
    skew.release(consumer)  # a rebuild replaces the clock
    assert consumer.paused == {"fenced", "tp0"}
