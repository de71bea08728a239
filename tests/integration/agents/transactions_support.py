"""What the tests of agents.transaction share (test_transactions*.py): new topics, one query's
Transactions over them, one record sent in a transaction, and the sink's committed records."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from agents.transaction import Transactions
from core.fetch import getmany_raw, supported
from tables.topics import TopicSpec, ensure_topics
from tests.support.kafka import unique


async def new_topics(
    servers: str, sink_configs: dict[str, str] | None = None
) -> tuple[TopicPartition, str, str]:
    """A new source and sink topic of one partition each (the sink with ``sink_configs``) and a
    new group id: (the source's partition, sink, group)."""
    source, sink, group = unique("src"), unique("sink"), unique("group")
    await ensure_topics(
        servers, [TopicSpec(source, 1), TopicSpec(sink, 1, configs=sink_configs or {})]
    )
    return TopicPartition(source, 0), sink, group


def transactions(
    servers: str,
    group: str,
    sink: str,
    *,
    id_prefix: str | None = None,
    client_id: str = "t",
    **options: Any,
) -> Transactions:
    """Query ``q``'s transactions for ``group`` writing ``sink`` (transactional ids prefixed
    ``id_prefix``, else the group); ``options``: the rest of :class:`Transactions`'."""
    return Transactions(
        "q",
        servers=servers,
        id_prefix=group if id_prefix is None else id_prefix,
        group_id=group,
        topics=[sink],
        client_id=client_id,
        **options,
    )


async def send_one(
    txns: Transactions, tp: TopicPartition, sink: str, value: bytes, offset: int = 1
) -> None:
    """``value`` (key ``k``) into ``tp``'s transaction (begun here), sent with ``offset``."""
    out = await txns.begin(tp)
    assert out is not None
    out.append(sink, b"k", value, partition=0)
    assert await txns.sent(tp, offset)


async def values_to_end(
    consumer: AIOKafkaConsumer,
    tp: TopicPartition,
    fetch: Callable[[], Awaitable[dict[Any, list[Any]]]],
) -> list[Any]:
    """The values of ``tp`` from its beginning to its end as ``consumer`` reads them with
    ``fetch`` (a read_committed consumer: to the last stable offset)."""
    consumer.assign([tp])
    await consumer.seek_to_beginning(tp)
    end = (await consumer.end_offsets([tp]))[tp]
    out: list[Any] = []
    while await consumer.position(tp) < end:
        for msgs in (await fetch()).values():
            out.extend(m.value for m in msgs)
    return out


async def raw_committed(servers: str, sink: str) -> list[Any]:
    """The committed values of ``sink``[0], read by the raw fetch path (core.fetch)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=servers, enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        assert supported(consumer)
        return await values_to_end(
            consumer, TopicPartition(sink, 0), lambda: getmany_raw(consumer, 500, 1000)
        )
    finally:
        await consumer.stop()
