"""agents.transaction's failures on Apache Kafka: a fenced zombie starts no producer, a task
whose transaction was dropped (a failed send, a failed commit on revocation) takes no batch until
its caller rewound it, and a commit failing on close stops without renewing the producer."""

from __future__ import annotations

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaTimeoutError
from mode import Service

from agents.transaction import Transactions
from agents.transactional import txns_revoked
from app.broker import Broker
from core.retry import StartupRetry
from tests.integration.agents.transactions_support import (
    new_topics,
    raw_committed,
    send_one,
    transactions,
)

pytestmark = [
    pytest.mark.broker,
    pytest.mark.kafka_only,
]


async def test_a_zombie_whose_abort_fails_starts_no_producer(broker: Broker) -> None:
    """A send fails for a reason of its own (a timeout) while the producer is already fenced:
    its abort fails too, and the task stops as a fenced one — no new producer with the same
    transactional id takes its place, which would fence the partition's owner (the one that
    fenced it) and go on from the zombie's position."""
    tp, sink, group = await new_topics(broker.url)

    zombie, owner = (transactions(broker.url, group, sink) for _ in range(2))
    await zombie.start([tp])
    try:
        await send_one(zombie, tp, sink, b"zombie")
        await owner.start([tp])  # fences the zombie; its open transaction is aborted
        try:
            await zombie._drop(zombie.tasks[tp], "sending", KafkaTimeoutError())
            assert tp not in zombie.tasks
            assert (zombie.failed.fenced, zombie.failed.aborted) == ([tp], [])
            await send_one(owner, tp, sink, b"owner")
            assert not await owner.commit(everything=True)
            assert await raw_committed(broker.url, sink) == [b"owner"]
        finally:
            await owner.close()
    finally:
        await zombie.close()


async def test_a_dropped_task_takes_no_batch_until_it_is_rewound(broker: Broker) -> None:
    """A task whose transaction was dropped (a send failed: aborted, to re-read from the
    committed offset) begins no transaction until the next commit reported it to its caller,
    which rewinds it: one begun before would get the re-read records a second time."""
    tp, sink, group = await new_topics(broker.url)
    txns = transactions(broker.url, group, sink)
    await txns.start([tp])
    try:
        await send_one(txns, tp, sink, b"dropped")
        await txns._drop(txns.tasks[tp], "sending", KafkaTimeoutError())
        await pending_until_rewound(txns, tp, sink, broker.url)
    finally:
        await txns.close()


async def test_a_task_whose_commit_failed_on_revocation_takes_no_batch_until_rewound(
    broker: Broker,
) -> None:
    """The revocation hook's commit fails for a reason other than fencing (the broker rejects a
    record too large for the sink): the task stays pending like a dropped one. A batch fetched
    before and waiting for the lock, run before the assignment hook, begins no transaction: it
    would go on from a position past the aborted records and commit past outputs never
    written. The next commit reports the task for rewinding; the task then commits again (a
    new producer: the old one's sequence numbers are off after the rejected batch)."""
    # The sink takes no record over 1 kB.
    tp, sink, group = await new_topics(broker.url, {"max.message.bytes": "1024"})
    txns = transactions(broker.url, group, sink)
    await txns.start([tp])
    try:
        await send_one(txns, tp, sink, b"x" * 4096)  # MessageSizeTooLarge at the commit
        await txns_revoked(txns)
        assert (txns.aborts, txns.commits) == (1, 0)
        # The batch waiting for the lock is skipped; once rewound, the task commits (the
        # rejected batch's producer was replaced: its sequence numbers were off).
        await pending_until_rewound(txns, tp, sink, broker.url)
    finally:
        await txns.close()


async def pending_until_rewound(
    txns: Transactions, tp: TopicPartition, sink: str, servers: str
) -> None:
    """``tp``'s transaction was dropped: it begins none, the next commit reports it aborted; once
    rewound (reading again) it commits, and the sink holds only what it wrote then."""
    assert await txns.begin(tp) is None
    assert txns.due()
    failed = await txns.commit()
    assert (failed.aborted, failed.fenced) == ([tp], [])
    await send_one(txns, tp, sink, b"again")  # rewound by the caller: reading again
    assert not await txns.commit(everything=True)
    assert await raw_committed(servers, sink) == [b"again"]


async def test_a_failed_commit_on_close_stops_without_renewing_the_producer(
    broker: Broker,
) -> None:
    """The agent's stop commits what is open (:meth:`Transactions.close`); a batch the broker
    rejects (too large for the sink) aborts that transaction, which would renew the producer —
    not while closing: its start, refused by the retry of an agent that is stopping
    (StoppedWaiting), ended the agent's stop before its consumer and stores were closed."""
    # The sink takes no record over 1 kB.
    tp, sink, group = await new_topics(broker.url, {"max.message.bytes": "1024"})
    agent = Service()
    await agent.start()
    txns = transactions(broker.url, group, sink, retry=StartupRetry(broker.url, agent))
    await txns.start([tp])
    await send_one(txns, tp, sink, b"x" * 4096)  # MessageSizeTooLarge at the commit
    await agent.stop()  # the agent told to stop: a producer's start would not wait for the broker
    failed = await txns.close()
    assert (failed.aborted, failed.fenced) == ([tp], [])
    assert (txns.aborts, txns.commits, txns.tasks) == (1, 0, {})
    assert await raw_committed(broker.url, sink) == []
