"""The co-partitioned task's key check (agents.copartition): a record whose key is not its group
column's text, has no key, or sits in another partition than its key's is a dead letter with
its topic, partition and offset; the others reach the query, the batch's progress unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiokafka.partitioner import murmur2

from agents.codec import make_decoder
from agents.copartition import CheckedProcessor, KeyCheck
from agents.pipeline import load_pipeline
from agents.process import BatchCounts, BatchProcessor
from agents.transactional import check_queries
from core import codec
from sql import SqlType, compile_query
from tables.deadletter import H_OFFSET, H_PARTITION, H_REASON, H_SOURCE, H_TOPIC
from tests.support.records import Collect, Rec

PARTS = 4
SQL = """\
CREATE STREAM orders (user_id BIGINT, amount BIGINT) WITH (topic='orders', key='user_id');
CREATE TABLE t WITH (topic='out') AS
SELECT user_id, COUNT(*) AS n, SUM(amount) AS total FROM orders GROUP BY user_id EMIT CHANGES
"""
COLUMNS = {"user_id": SqlType("BIGINT"), "amount": SqlType("BIGINT")}


def home(key: bytes) -> int:
    return int((murmur2(key) & 0x7FFFFFFF) % PARTS)


def processor(column: str | None) -> CheckedProcessor:
    query = compile_query(SQL, {})
    decode = make_decoder(COLUMNS)
    inner = BatchProcessor(
        query, decode, name="t", sink_topic="out", key_columns=["user_id"], dead_letter_topic="dlq"
    )
    check = KeyCheck("orders", "orders", PARTS, column, decode)
    return CheckedProcessor(inner, check, "t")


def rec(offset: int, key: bytes | None, value: dict[str, object] | bytes, p: int) -> Rec:
    raw = value if isinstance(value, bytes) else codec.dumps(value)
    return Rec(p, offset, key, raw)


def test_bad_records_are_dead_letters_and_the_batch_keeps_its_last_record() -> None:
    p = home(b"7")
    other = (p + 1) % PARTS
    records = [
        rec(0, b"7", {"user_id": 7, "amount": 1}, p),
        rec(1, b"8", {"user_id": 7, "amount": 10}, p),  # key is not the column
        rec(2, None, {"user_id": 7, "amount": 100}, p),  # no key
        rec(3, b"7", b"not json", p),  # the query's own dead letter
        rec(4, b"7", {"user_id": 7, "amount": 2}, p),
        rec(5, b"7", {"user_id": 7, "amount": 1000}, other),  # misplaced
    ]
    out = Collect()
    counts = BatchCounts()
    by_partition: dict[int, list[Rec]] = {}
    for r in records:
        by_partition.setdefault(r.partition, []).append(r)
    check = processor("user_id")
    for part, recs in by_partition.items():
        check.run_partition("orders", part, recs, out, counts)
    rows = [codec.loads(v) for t, _, v, _ in out.records if t == "out" and v is not None]
    assert rows == [
        {"user_id": 7, "n": 1, "total": 1},
        {"user_id": 7, "n": 2, "total": 3},
    ]
    dead = [h for t, _, _, h in out.records if t == "dlq"]
    assert [(h[H_PARTITION], h[H_OFFSET]) for h in dead] == [
        (str(p).encode(), b"1"),
        (str(p).encode(), b"2"),
        (str(p).encode(), b"3"),
        (str(other).encode(), b"5"),
    ]
    assert all(h[H_TOPIC] == b"orders" and h[H_SOURCE] == b"query:t" for h in dead)
    reasons = [h[H_REASON].decode() for h in dead]
    assert reasons[0] == (
        "record key '8' is not the key column user_id of stream orders (7):"
        " its group may be in another partition"
    )
    assert reasons[1].startswith("record without a key: stream orders")
    assert reasons[2].startswith("value is not valid JSON"), reasons[2]
    assert reasons[3] == (
        f"record key '7' belongs in partition {p} of orders (Kafka's default partitioner),"
        f" not {other}: stream orders is not partitioned by its key"
    )
    # Progress is the whole batch's: every record counted in, the last one of each partition.
    assert counts.records_in == len(records)
    assert counts.dead_letters == 4
    assert {part: r.offset for part, r in counts.last.items()} == {p: 4, other: 5}


def test_keys_are_the_canonical_text_and_null_is_the_empty_key() -> None:
    check = KeyCheck("orders", "orders", PARTS, "user_id", make_decoder(None))
    for key, value in ((b"42", 42), (b"42", 42.0), (b"4.5", 4.5), (b"", None), (b"ab", "ab")):
        assert check(rec(0, key, {"user_id": value}, home(key)), home(key)) is None, (key, value)
    bad = check(rec(0, b"042", {"user_id": 42}, home(b"042")), home(b"042"))
    assert bad is not None
    assert bad.startswith("record key '042' is not the key column")


def test_group_by_key_needs_only_a_placed_key() -> None:
    check = processor(None).check
    assert check(rec(0, b"whatever", b"not json", home(b"whatever")), home(b"whatever")) is None
    assert check(rec(0, None, {"user_id": 1}, 0), 0) is not None
    wrong = (home(b"k") + 1) % PARTS
    assert check(rec(0, b"k", {"user_id": 1}, wrong), wrong) is not None


KEYED_PIPELINE = """\
CREATE STREAM orders (user_id BIGINT, amount BIGINT, ts BIGINT)
  WITH (topic='o-topic', key='user_id', timestamp='ts');
CREATE TABLE per_user AS SELECT user_id, COUNT(*) AS n FROM orders GROUP BY user_id;
CREATE TABLE per_amount AS SELECT amount, COUNT(*) AS n FROM orders GROUP BY amount;
"""


def test_a_pipeline_runs_a_co_partitioned_query_without_a_repartition_topic(
    tmp_path: Path,
) -> None:
    path = tmp_path / "p.sql"
    path.write_text(KEYED_PIPELINE)
    pipeline = load_pipeline([path])
    by_name = {q.name: q for q in pipeline.queries}
    per_user, per_amount = by_name["per_user"], by_name["per_amount"]
    assert (per_user.stateful, per_user.copartitioned, per_user.repartition) == (True, True, False)
    assert per_user.key_column == "user_id"
    assert per_user.partitioning.startswith("Partitioning co-partitioned: GROUP BY user_id")
    assert (per_amount.copartitioned, per_amount.repartition) == (False, True)
    topics = pipeline.repartition_topics("app", {"o-topic": 4}, 1)
    assert [t.name for t in topics] == ["app-per_amount-repartition"]
    # Exactly-once runs it (one transaction per source partition's task).
    check_queries(pipeline.queries)


def test_the_query_does_not_decode_again_what_the_check_decoded() -> None:
    calls: list[bytes] = []
    typed = make_decoder(COLUMNS)

    def decode(raw: bytes | None) -> dict[str, Any]:
        assert raw is not None
        calls.append(raw)
        return typed(raw)

    inner = BatchProcessor(
        compile_query(SQL, {}),
        decode,
        name="t",
        sink_topic="out",
        key_columns=["user_id"],
        dead_letter_topic="dlq",
    )
    # The general path (the generated fold decodes each record once into its struct).
    check = CheckedProcessor(
        inner, KeyCheck("orders", "orders", PARTS, "user_id", decode), "t", fold=False
    )
    p = home(b"7")
    records = [rec(i, b"7", {"user_id": 7, "amount": i}, p) for i in range(5)]
    out = Collect()
    check.run_partition("orders", p, records, out, BatchCounts())
    assert len(calls) == len(records)
    assert [codec.loads(v)["total"] for _, _, v, _ in out.records if v] == [0, 1, 3, 6, 10]
