"""Output records land in the partition Kafka's default partitioner picks, in record batches."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from agents.sink import Output


async def test_partitions_match_the_java_default_partitioner() -> None:
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", max_batch_size=1024)
    out = Output(producer)
    out.set_partitions("t", [0, 1, 2, 3, 4])
    out.set_partitions("one", [0])
    default = DefaultPartitioner()
    for i in range(300):
        key = f"user-{i}".encode()
        assert out.partition("t", key) == default(key, [0, 1, 2, 3, 4], [0, 1, 2, 3, 4])
        assert out.partition("t", key) == out.partition("t", key)  # cached, same answer
    assert out.partition("one", b"x") == 0
    assert {out.partition("t", None) for _ in range(10)} == {0, 1, 2, 3, 4}  # keyless: spread

    # Records fill batches per topic-partition; a full batch starts a new one.
    for _ in range(40):
        out.append("t", b"k", b"x" * 100, partition=2)
    out.append("one", None, b"v", [("h", b"1")])
    assert out.records == 41
    assert len(out._full) >= 3
    out.append("t", b"k", b"x" * 5000)  # larger than a batch: a batch of its own
    assert out.records == 42


async def test_appender_and_append_share_batches_in_order() -> None:
    from aiokafka.record.default_records import DefaultRecordBatch

    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", max_batch_size=1024)
    out = Output(producer)
    out.set_partitions("t", [0, 1])
    add = out.appender("t", 1)
    sent: list[bytes] = []
    for i in range(60):  # interleaved: one record batch sequence, offsets without gaps
        value = f"v{i:02d}".encode() * 10
        if i % 3:
            add(b"k", value)
        else:
            out.append("t", b"k", value, partition=1)
        sent.append(value)
    assert out.records == 60
    add(b"k", b"x" * 5000)  # larger than a batch: a batch of its own, as append() does
    sent.append(b"x" * 5000)
    batches = [b for t, p, b in out._full if (t, p) == ("t", 1)] + [out._open[("t", 1)]]
    assert len(batches) >= 3  # 60 records of ~40 bytes do not fit one 1 kB batch
    got = []
    for batch in batches:
        records = list(DefaultRecordBatch(bytearray(batch._build())))
        assert [r.offset for r in records] == list(range(len(records)))
        assert batch.record_count() == len(records)
        got += [r.value for r in records]
    assert got == sent
