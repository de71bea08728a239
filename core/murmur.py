"""Kafka's default partitioner hash (murmur2 with the Java client's seed, as aiokafka computes
it), in C: the ``murmurhash2`` wheel's ``murmurhash2(key, seed)`` is the same function (the
Java client's ``Utils.murmur2`` is plain MurmurHash2 with seed ``0x9747b28c``). aiokafka's own
is pure Python (3.3 µs a key) and ours was too (1.8 µs); this is ~0.3 µs. A stateful query's
outputs hash each new key once (a window's key is new for every window), so it is on the hot
path of every window's first record.
"""

from __future__ import annotations

from murmurhash2 import murmurhash2 as _murmurhash2

#: The seed of ``org.apache.kafka.common.utils.Utils.murmur2``.
_SEED = 0x9747B28C


def murmur2(data: bytes) -> int:
    """``aiokafka.partitioner.murmur2(data)`` (tests/unit/core/test_murmur.py checks it is)."""
    return _murmurhash2(data, _SEED)
