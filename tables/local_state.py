"""Whether a table's local state (its RocksDB rows and stored offsets) may be trusted when the
loader (:mod:`tables.loader`) resumes it: the last applied record of each partition re-read and
compared byte for byte (its fingerprint), and the rows' age against the topic's tombstone
retention.

Separate from the loader because these are the checks, not the following of the topic — they
decide only whether to rebuild — and to keep :mod:`tables.loader` under 400 lines.
"""

from __future__ import annotations

import time
from typing import Any

from aiokafka import TopicPartition

from tables.store import Fingerprint, TableStore
from tables.topics import tombstone_retention_ms


class LocalStateMismatch(Exception):
    """Stored offsets or fingerprints do not describe this topic: local state is not trusted."""


async def stale_reason(store: TableStore, servers: str | None, topic: str) -> str | None:
    """Why the rows may miss a delete whose tombstone the broker has since cleaned away.

    A tombstone written after the rows last matched the whole topic is kept at least
    ``delete.retention.ms`` after that moment; rows older than half of it are not trusted
    (the other half is the margin for reading the tail).
    """
    synced = store.synced_at()
    if servers is None or synced is None or not store.positions():
        return None
    retention = await tombstone_retention_ms(servers, topic)
    age = int(time.time() * 1000) - synced
    if retention is None or age <= retention // 2:
        return None
    return (
        f"last in sync {age / 1000:.1f}s ago, while the topic keeps tombstones "
        f"{retention / 1000:g}s (delete.retention.ms): deletes may have been cleaned away"
    )


def verify_resumed(
    verify: dict[TopicPartition, Fingerprint], fetched: dict[TopicPartition, Any]
) -> dict[TopicPartition, Any]:
    """``fetched`` without the re-read last applied records: a partition's first fetch after a
    resume (its entry popped from ``verify``) must start with that record, unchanged; raises
    :class:`LocalStateMismatch` when it differs or the topic restarted its numbering."""
    verified = {}
    for tp, msgs in fetched.items():
        fp = verify.pop(tp, None)
        if fp is not None and msgs:
            first = msgs[0]
            if first.offset == fp.offset:
                if Fingerprint.of(first.offset, first.key, first.value) != fp:
                    raise LocalStateMismatch(
                        f"record {tp.topic}[{tp.partition}]@{first.offset} differs"
                    )
                msgs = msgs[1:]
            elif first.offset < fp.offset:
                raise LocalStateMismatch(
                    f"{tp.topic}[{tp.partition}] restarted numbering: read from the last applied "
                    f"record's offset {fp.offset}, it answered offset {first.offset}"
                )
        verified[tp] = msgs
    return verified
