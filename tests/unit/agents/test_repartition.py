"""Stage 1 of a stateful query without a broker: records placed by group key with their bytes,
timestamp and origin; keys that fail are dead letters; and the per-partition task that skips
the copies stage 1 writes again, replays quietly and resumes from its RocksDB state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition
from aiokafka.partitioner import murmur2

from agents.codec import make_decoder
from agents.process import BatchProcessor
from agents.repartition import (
    H_ORIGIN,
    RepartitionProcessor,
    group_key_bytes,
    origin_of,
    pack_origin,
)
from agents.tasks import AggregateTask
from core import codec
from sql import compile_query
from sql.query import CompiledQuery
from sql.types import SqlType
from tables.apply import Malformed
from tables.deadletter import H_OFFSET, H_PARTITION, H_REASON, H_TOPIC, dead_letter_headers

SQL = """\
CREATE STREAM events (k VARCHAR, v BIGINT) WITH (topic='events');
CREATE TABLE sums AS SELECT k, COUNT(*) AS n, SUM(v) AS total FROM events GROUP BY k;
"""
PARTS = 4


@dataclass
class Rec:
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int = 1_000
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class Collect:
    """An output keeping what it is given, placing keys as Kafka's default partitioner does."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def partition(self, topic: str, key: bytes | None) -> int:
        assert key is not None
        return int(murmur2(key) & 0x7FFFFFFF) % PARTS

    def append(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
        timestamp: int | None = None,
    ) -> None:
        self.records.append(
            {
                "topic": topic,
                "key": key,
                "value": value,
                "headers": dict(headers or []),
                "partition": partition,
                "timestamp": timestamp,
            }
        )

    def dead_letter(self, topic: str, item: Malformed, source: str) -> None:
        self.append(topic, item.key, item.value, dead_letter_headers(item, source))

    def appender(self, topic: str, partition: int) -> Callable[[bytes | None, bytes | None], None]:
        return lambda k, v: self.append(topic, k, v, None, partition)


def stage1() -> RepartitionProcessor:
    query = compile_query(SQL, {})
    decode = make_decoder({"k": SqlType("VARCHAR"), "v": SqlType("BIGINT")})
    return RepartitionProcessor(
        query.partition_key(), decode, name="sums", topic="rp", dead_letter_topic="dlq"
    )


def test_group_key_bytes_agree_for_equal_values() -> None:
    from decimal import Decimal

    assert group_key_bytes(("a",)) == b"a"  # one column: the sink key's text
    assert group_key_bytes((5,)) == group_key_bytes((5.0,)) == group_key_bytes((Decimal("5.00"),))
    assert group_key_bytes((None,)) == b""  # NULL is a group: a fixed partition, not round robin
    assert group_key_bytes(("a", 1)) == b'["a","1"]'
    assert group_key_bytes(()) == b"[]"


def test_records_go_to_their_group_keys_partition_with_their_own_bytes() -> None:
    processor = stage1()
    out = Collect()
    raw = [
        Rec(10, b"e1", b'{"k": "x", "v": 1}', 111),
        Rec(11, None, b'{"k": "y", "v": 2}', 222),
        Rec(12, b"e3", None),  # a tombstone: nothing to aggregate
        Rec(13, b"e4", b'{"k": null, "v": 4}', 444),
        Rec(14, b"e5", b'{"k": "x" '),  # not JSON
    ]
    counts = processor.run_fetched({TopicPartition("events", 2): raw}, out)
    assert (counts.records_in, counts.records_out, counts.dead_letters) == (5, 3, 1)
    assert counts.tombstones == 1
    assert counts.last[2].offset == 14
    forwarded = [r for r in out.records if r["topic"] == "rp"]
    assert [r["value"] for r in forwarded] == [raw[0].value, raw[1].value, raw[3].value]
    assert [r["key"] for r in forwarded] == [b"e1", None, b"e4"]  # the record's own key
    assert [r["timestamp"] for r in forwarded] == [111, 222, 444]
    assert [r["partition"] for r in forwarded] == [
        out.partition("rp", b"x"),
        out.partition("rp", b"y"),
        out.partition("rp", b""),
    ]
    assert [origin_of(list(r["headers"].items())) for r in forwarded] == [(2, 10), (2, 11), (2, 13)]
    (dead,) = [r for r in out.records if r["topic"] == "dlq"]
    assert dead["value"] == raw[4].value
    assert dead["key"] == b"e5"
    headers = dead["headers"]
    assert (headers[H_TOPIC], headers[H_PARTITION], headers[H_OFFSET]) == (b"events", b"2", b"14")
    assert b"JSON" in headers[H_REASON]


def test_a_failing_group_key_is_a_dead_letter_and_the_rest_flows() -> None:
    sql = (
        "CREATE STREAM s (v VARCHAR) WITH (topic='s');\n"
        "SELECT CAST(v AS BIGINT) AS n, COUNT(*) FROM s GROUP BY CAST(v AS BIGINT)"
    )
    key = compile_query(sql, {}).partition_key()
    processor = RepartitionProcessor(
        key, make_decoder(None), name="q", topic="rp", dead_letter_topic="dlq"
    )
    out = Collect()
    counts = processor.run_fetched(
        {TopicPartition("s", 0): [Rec(0, None, b'{"v": "x"}'), Rec(1, None, b'{"v": "7"}')]}, out
    )
    assert (counts.records_out, counts.dead_letters) == (1, 1)
    assert [r["topic"] for r in out.records] == ["dlq", "rp"]
    assert b"CastError" in out.records[0]["headers"][H_REASON]


def copy(rec: dict[str, Any], offset: int) -> Rec:
    """A stage-1 record as the repartition topic holds it at ``offset``."""
    return Rec(offset, rec["key"], rec["value"], rec["timestamp"], list(rec["headers"].items()))


def task(tmp_path: Path) -> AggregateTask:
    def build() -> tuple[CompiledQuery, BatchProcessor]:
        query = compile_query(SQL, {})
        decode = make_decoder({"k": SqlType("VARCHAR"), "v": SqlType("BIGINT")})
        return query, BatchProcessor(
            query, decode, name="sums", sink_topic="out", key_columns=["k"], dead_letter_topic="d"
        )

    return AggregateTask("sums", TopicPartition("rp", 0), tmp_path / "p0", build)


def test_task_skips_copies_replays_quietly_and_resumes(tmp_path: Path) -> None:
    src = [Rec(i, None, codec.dumps({"k": "a", "v": i + 1})) for i in range(4)]
    out = Collect()
    stage1().run_fetched({TopicPartition("events", 0): src}, out)
    recs = [copy(r, i) for i, r in enumerate(out.records)]
    # Stage 1 crashed after writing offsets 2 and 3 and wrote them again from offset 2.
    recs += [copy(r, 4 + i) for i, r in enumerate(out.records[2:])]

    first = task(tmp_path)
    assert not first.open()  # nothing stored: replay from the beginning
    sink = Collect()
    counts, batch = first.run(first.verify(recs), sink)
    assert counts.records_in == 4  # the two copies skipped
    assert batch is not None
    first.state.commit(batch)
    del batch
    assert [codec.loads(r["value"])["n"] for r in sink.records] == [1, 2, 3, 4]
    assert first.duplicates == 2
    assert first.position == 6
    first.close()

    # A new owner, no local state: records below the committed offset rebuild state only.
    again = task(tmp_path / "other")
    again.open()
    again.quiet_until = 5
    quiet = Collect()
    again.run(recs, quiet)
    assert quiet.records == []
    assert again.quiet == 4  # four fresh records (two copies skipped before)

    # The first owner's store resumes where it stopped, after re-reading its last record.
    resumed = task(tmp_path)
    assert resumed.open()
    assert (resumed.position, resumed.seek_offset) == (6, 5)
    rest = Collect()
    stage1().run_fetched({TopicPartition("events", 0): [Rec(4, None, b'{"k": "a", "v": 5}')]}, rest)
    tail = [recs[5], copy(rest.records[0], 6)]  # the last applied record, re-read, then a new one
    verified = resumed.verify(tail)
    assert [r.offset for r in verified] == [6]
    sink2 = Collect()
    resumed.run(verified, sink2)
    assert [codec.loads(r["value"]) for r in sink2.records] == [{"k": "a", "n": 5, "total": 15}]
    resumed.close()
    again.close()


def test_origin_header_round_trip() -> None:
    assert origin_of([("other", b"x"), (H_ORIGIN, pack_origin(3, 2**40))]) == (3, 2**40)
    assert origin_of([]) is None
    assert origin_of(None) is None


def test_a_key_on_the_message_key_partitions_by_its_text() -> None:
    sql = "CREATE STREAM s (v BIGINT) WITH (topic='s');\nSELECT _key, COUNT(*) FROM s GROUP BY _key"
    key = compile_query(sql, {}).partition_key()
    processor = RepartitionProcessor(
        key, make_decoder(None), name="q", topic="rp", dead_letter_topic="dlq"
    )
    out = Collect()
    recs = [Rec(0, b"user-7", b'{"v": 1}'), Rec(1, None, b'{"v": 2}')]
    processor.run_fetched({TopicPartition("s", 0): recs}, out)
    assert [r["partition"] for r in out.records] == [
        out.partition("rp", b"user-7"),
        out.partition("rp", b""),
    ]
