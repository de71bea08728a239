"""A group's committed offsets read *stably* (KIP-447): never while a transaction that commits
offsets for them is still being completed.

Under exactly-once a partition's new owner fences the previous owner's producer and then reads
the group's committed offset, to know which records already had their outputs committed (those
are replayed quietly, to rebuild state only). Fencing completes the previous owner's last
transaction, but the group coordinator applies that transaction's offsets when the commit
markers reach it — an OffsetFetch before that answers the *older* offset, and the new owner
emits that transaction's outputs a second time (seen: one batch's EMIT CHANGES rows twice in the
SIGKILL test). OffsetFetch v7 with ``require_stable`` answers UNSTABLE_OFFSET_COMMIT instead
until the offsets are settled. aiokafka sends OffsetFetch up to v3 only, so v7 is defined here
(flexible version, from the Kafka protocol's OffsetFetch schema).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.client import CoordinationType
from aiokafka.errors import for_code
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    Boolean,
    CompactArray,
    CompactString,
    Int16,
    Int32,
    Int64,
    Schema,
    TaggedFields,
)

#: The coordinator's answer while a transaction's offsets are not settled yet.
UNSTABLE_OFFSET_COMMIT = 88
#: How long to keep asking (a transaction's markers normally land within milliseconds).
SETTLE_TIMEOUT_S = 30.0
E_UNSETTLED = (
    "the committed offsets of group {group} did not settle within {seconds:g} s: {parts} still "
    "in an open transaction"
)


class OffsetFetchResponseV7(Response):  # type: ignore[misc]
    API_KEY = 9
    API_VERSION = 7
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "topics",
            CompactArray(
                ("name", CompactString("utf-8")),
                (
                    "partitions",
                    CompactArray(
                        ("partition_index", Int32),
                        ("committed_offset", Int64),
                        ("committed_leader_epoch", Int32),
                        ("metadata", CompactString("utf-8")),
                        ("error_code", Int16),
                        ("tags", TaggedFields),
                    ),
                ),
                ("tags", TaggedFields),
            ),
        ),
        ("error_code", Int16),
        ("tags", TaggedFields),
    )


class OffsetFetchRequestV7(RequestStruct):  # type: ignore[misc]
    FLEXIBLE_VERSION = True
    API_KEY = 9
    API_VERSION = 7
    RESPONSE_TYPE = OffsetFetchResponseV7
    SCHEMA = Schema(
        ("group_id", CompactString("utf-8")),
        (
            "topics",
            CompactArray(
                ("name", CompactString("utf-8")),
                ("partition_indexes", CompactArray(Int32)),
                ("tags", TaggedFields),
            ),
        ),
        ("require_stable", Boolean),
        ("tags", TaggedFields),
    )


class StableOffsetFetch(Request[OffsetFetchRequestV7]):  # type: ignore[misc]
    API_KEY = 9

    def __init__(self, group_id: str, topics: dict[str, list[int]]) -> None:
        self.group_id = group_id
        self.topics = topics

    def build(self, request_struct_class: type[OffsetFetchRequestV7]) -> OffsetFetchRequestV7:
        topics: list[tuple[str, list[int], dict[int, bytes]]] = [
            (name, parts, {}) for name, parts in sorted(self.topics.items())
        ]
        return request_struct_class(self.group_id, topics, True, {})


async def stable_committed(
    consumer: AIOKafkaConsumer, group_id: str, tps: Iterable[TopicPartition]
) -> dict[TopicPartition, int | None]:
    """The committed offset of each of ``tps`` (None: none committed), once settled."""
    topics: dict[str, list[int]] = {}
    for tp in tps:
        topics.setdefault(tp.topic, []).append(tp.partition)
    if not topics:
        return {}
    client: Any = consumer._client
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_TIMEOUT_S
    while True:
        node = await client.coordinator_lookup(CoordinationType.GROUP, group_id)
        response = await client.send(node, StableOffsetFetch(group_id, topics))
        if response.error_code:
            raise for_code(response.error_code)(f"OffsetFetch for group {group_id}")
        out: dict[TopicPartition, int | None] = {}
        unstable = []
        for name, parts, _ in response.topics:
            for index, offset, _epoch, _meta, error, _tags in parts:
                if error == UNSTABLE_OFFSET_COMMIT:
                    unstable.append(f"{name}[{index}]")
                elif error:
                    raise for_code(error)(f"OffsetFetch {name}[{index}] for group {group_id}")
                out[TopicPartition(name, index)] = offset if offset >= 0 else None
        if not unstable:
            return out
        if loop.time() > deadline:
            raise TimeoutError(
                E_UNSETTLED.format(
                    group=group_id, seconds=SETTLE_TIMEOUT_S, parts=", ".join(unstable)
                )
            )
        await asyncio.sleep(0.02)
