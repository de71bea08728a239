"""core.murmur.murmur2 is aiokafka's murmur2 (Kafka's default partitioner): for any bytes."""

from __future__ import annotations

from aiokafka.partitioner import murmur2 as reference
from hypothesis import given
from hypothesis import strategies as st

from core.murmur import murmur2


@given(st.binary(max_size=64))
def test_same_hash_as_aiokafka(data: bytes) -> None:
    assert murmur2(data) == reference(data)


def test_keys_the_fold_writes() -> None:
    keys = [b"", b"0", b"42", b"[7,1700000010000]", b"\xff\xfe\xfd", "ключ".encode()]
    keys += [b"%d" % i for i in range(-1000, 1000)]
    assert [murmur2(k) for k in keys] == [reference(k) for k in keys]
