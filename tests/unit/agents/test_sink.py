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


async def test_record_sink_fills_batches_as_the_appender() -> None:
    """The protocol generated code follows (sql.codegen.sink): the C builder's append called
    inline, a full batch rolled over; records keep their order with append()'s, offsets run
    without gaps in each batch, and the record counts add up."""
    from aiokafka.record.default_records import DefaultRecordBatch

    from sql.codegen.sink import EmitSink

    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", max_batch_size=1024)
    out = Output(producer)
    out.set_partitions("t", [0, 1])
    sent: list[bytes] = []
    out.append("t", b"k", b"first", partition=1)
    sent.append(b"first")
    for round_ in range(3):  # three generated batches, with append() between them
        sink = out.record_sink("t", 1)
        append, n = sink.open()
        for i in range(25):
            value = f"r{round_}v{i:02d}".encode() * 8
            if append(n, None, b"k", value, []) is None:
                append, n = sink.roll(n)
                assert append(0, None, b"k", value, []) is not None
            n += 1
            sent.append(value)
        sink.close(n)
        out.append("t", b"k", b"between", partition=1)
        sent.append(b"between")
    assert out.records == len(sent)
    batches = [b for t, p, b in out._full if (t, p) == ("t", 1)] + [out._open[("t", 1)]]
    assert len(batches) >= 4
    got = []
    for batch in batches:
        records = list(DefaultRecordBatch(bytearray(batch._build())))
        assert [r.offset for r in records] == list(range(len(records)))
        assert batch.record_count() == len(records)
        got += [r.value for r in records]
    assert got == sent

    # A record larger than a batch goes alone into a new one (as with append()).
    sink = out.record_sink("t", 0)
    append, n = sink.open()
    assert append(n, None, b"k", b"small", []) is not None
    n += 1
    assert append(n, None, b"k", b"x" * 5000, []) is None
    append, n = sink.roll(n)
    assert append(0, None, b"k", b"x" * 5000, []) is not None
    sink.close(1)
    assert [r.value for r in DefaultRecordBatch(bytearray(out._open[("t", 0)]._build()))] == [
        b"x" * 5000
    ]

    # Any emit function as a sink (never full).
    seen: list[tuple[bytes | None, bytes]] = []
    emit_sink = EmitSink(lambda key, value: seen.append((key, value)))
    append, n = emit_sink.open()
    assert append(n, None, b"a", b"1", []) is not None
    emit_sink.close(n + 1)
    assert seen == [(b"a", b"1")]
    await producer.stop()
