"""core.produce: the one-copy produce request encodes exactly aiokafka's bytes, every version."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.protocol.produce import ProduceRequest

from core.produce import LeanProduceRequest, lean_produce, supported


def _batch(records: int, partition: int) -> bytearray:
    b = BatchBuilder(1024 * 1024, 0)
    for i in range(records):
        value = b'{"order_id":%d,"p":%d,"notional":12.50}' % (i, partition)
        assert b.append(timestamp=1_700_000_000_000 + i, key=str(i).encode(), value=value)
    buf: bytearray = b._build()
    return buf


TOPICS = [
    ("out", [(0, _batch(500, 0)), (1, bytes(_batch(3, 1)))]),
    ("dlq", [(2, memoryview(bytes(_batch(1, 2)))), (5, bytearray(b"xyz")), (7, None)]),
    ("empty", []),
]


#: Every request version, and from v3 (where transactional ids came) with one too.
CASES = [(v, None) for v in range(8)] + [(v, "txn-1") for v in range(3, 8)]


@pytest.mark.parametrize(("version", "transactional_id"), CASES)
def test_same_bytes_as_aiokafka(version: int, transactional_id: str | None) -> None:
    versions = {0: (version, version)}
    theirs = ProduceRequest(transactional_id, -1, 30_000, TOPICS).prepare(versions)
    ours = LeanProduceRequest(transactional_id, -1, 30_000, TOPICS).prepare(versions)
    assert version == type(ours).API_VERSION
    assert type(ours).RESPONSE_TYPE is type(theirs).RESPONSE_TYPE
    assert isinstance(ours, type(theirs))
    assert ours.encode() == theirs.encode()


def test_a_malformed_request_fails_as_aiokafka_fails() -> None:
    bad = [("out", [(0,)])]  # a partition entry without its records
    with pytest.raises(ValueError, match="field count"):
        ProduceRequest(None, -1, 30_000, bad).prepare({0: (7, 7)}).encode()
    with pytest.raises(ValueError, match="field count"):
        LeanProduceRequest(None, -1, 30_000, bad).prepare({0: (7, 7)}).encode()


async def test_installed_on_a_producer() -> None:
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1")
    assert supported(producer)
    assert lean_produce(producer)
    assert producer._sender._send_produce_req.__func__.__module__ == "core.produce"
