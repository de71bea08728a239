"""agents.transaction on Apache Kafka: a committed transaction makes outputs, source offsets and
local state agree; an aborted one leaves no output (read_committed) and no local state behind; a
producer fenced by a newer one with the same transactional id stops its task without writing."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections import namedtuple
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import ProducerFenced

from agents.state import QueryState
from agents.transaction import Transactions
from app.broker import Broker
from tests.integration.agents.transactions_support import (
    new_topics,
    raw_committed,
    send_one,
    transactions,
    values_to_end,
)

pytestmark = [
    pytest.mark.broker,
    pytest.mark.kafka_only,
]

Rec = namedtuple("Rec", "offset key value")


async def committed_view(servers: str, group: str, topic: str, sink: str) -> tuple[Any, list[Any]]:
    """The group's committed offset of ``topic``[0] and the committed records of ``sink``."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=servers,
        group_id=group,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        offset = await consumer.committed(TopicPartition(topic, 0))
        tp = TopicPartition(sink, 0)
        return offset, await values_to_end(consumer, tp, lambda: consumer.getmany(timeout_ms=500))
    finally:
        await consumer.stop()


async def settled_view(servers: str, group: str, topic: str, sink: str, offset: int) -> Any:
    """:func:`committed_view` once the group answers ``offset``: commit_transaction returns before
    the coordinator wrote the transaction's markers (the group's offset lags for a moment)."""
    for _ in range(50):
        view = await committed_view(servers, group, topic, sink)
        if view[0] == offset:
            break
        await asyncio.sleep(0.1)
    return view


def unread_errors(caplog: pytest.LogCaptureFixture) -> list[object]:
    """Errors of finished futures nobody read: those still alive, and those a full collection
    frees now (asyncio logs each one when it is collected, with its traceback)."""
    seen = len(caplog.records)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        gc.collect()
    collected: list[object] = [
        r.getMessage() for r in caplog.records[seen:] if "never retrieved" in r.getMessage()
    ]
    alive = [
        o
        for o in gc.get_objects()
        # _log_traceback: set while the future's error is unread (cleared by .exception()).
        if asyncio.isfuture(o) and o.done() and getattr(o, "_log_traceback", False)
    ]
    return collected + alive


def state_batch(state: QueryState, value: int, last: int) -> Any:
    return state.batch({"total": value}, {0: Rec(last, b"k", str(last).encode())})


async def test_commit_abort_and_fencing(
    broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    unread_before = unread_errors(caplog)
    kafka_url = broker.url
    tp, sink, group = await new_topics(kafka_url)
    source = tp.topic
    state = QueryState(tmp_path / "state", source)
    state.open()

    def txns() -> Transactions:
        return transactions(kafka_url, group, sink, id_prefix=f"{group}-q", client_id="test")

    first = txns()
    await first.start([tp])
    try:
        # Committed: outputs visible, offset committed, state written with it.
        out = await first.begin(tp)
        assert out is not None
        out.append(sink, b"k", b"a", partition=0)
        out.append(sink, b"k", b"b", partition=0)
        await first.sent(tp, 5, [(state, state_batch(state, 2, 4))])
        assert state.positions() == {}  # not before the commit
        assert not await first.commit(everything=True)
        assert state.positions() == {0: 5}
        # What this worker committed counts even while the group still answers the older offset.
        assert first.committed_offset(tp, None) == first.committed_offset(tp, 3) == 5
        assert await settled_view(kafka_url, group, source, sink, 5) == (5, [b"a", b"b"])

        # Aborted: nothing of it anywhere.
        out = await first.begin(tp)
        assert out is not None
        out.append(sink, b"k", b"c", partition=0)
        await first.sent(tp, 9, [(state, state_batch(state, 3, 8))])
        assert await first.abort() == [tp]
        assert state.positions() == {0: 5}
        assert dict(state.items()) == {"total": 2}
        assert await settled_view(kafka_url, group, source, sink, 5) == (5, [b"a", b"b"])

        # Fenced: a newer producer with the same transactional id (the partition's next owner)
        # fences this one; its transaction fails as fenced, its task is dropped, nothing written.
        out = await first.begin(tp)
        assert out is not None
        out.append(sink, b"k", b"zombie", partition=0)
        await first.sent(tp, 12, [(state, state_batch(state, 9, 11))])
        second = txns()
        await second.start([tp])
        try:
            failed = await first.commit(everything=True)
            assert failed.fenced == [tp]
            assert tp not in first.tasks
            # The zombie's next batch (fetched before its partition was paused) starts no
            # producer: one would fence the new owner's (whose commit below would then fail)
            # and commit from the zombie's position.
            assert await first.begin(tp) is None
            assert (await first.commit()).fenced == [tp]
            assert tp not in first.tasks
            assert state.positions() == {0: 5}
            # Nothing of the fenced transaction holds its store (a state batch kept alive holds
            # RocksDB's lock: the task reopened after the rebalance could not open it).
            state.close()
            state.open()
            # The new owner carries on from the committed offset.
            out = await second.begin(tp)
            assert out is not None
            out.append(sink, b"k", b"d", partition=0)
            await second.sent(tp, 7, [(state, state_batch(state, 3, 6))])
            assert not await second.commit(everything=True)
            assert state.positions() == {0: 7}
            view = await settled_view(kafka_url, group, source, sink, 7)
            assert view == (7, [b"a", b"b", b"d"])
            # The agents' raw fetch path skips the aborted and the fenced records too.
            assert await raw_committed(kafka_url, sink) == [b"a", b"b", b"d"]

            # Fenced between sends (issue 9): the producer learns it in the background (adding
            # the partition to its transaction), its next send fails (IllegalOperation); the task
            # is dropped as a fenced commit's is, instead of failing the agent.
            out = await second.begin(tp)
            assert out is not None
            third = txns()
            await third.start([tp])
            try:
                out.append(sink, b"k", b"zombie2", partition=0)
                assert await second.sent(tp, 9, [(state, state_batch(state, 7, 8))])
                # The transaction's end fails once the sender learnt it was fenced.
                ending = second.tasks[tp].producer._txn_manager.wait_for_transaction_end()
                with pytest.raises(ProducerFenced):
                    await asyncio.wait_for(asyncio.shield(ending), 15)
                out.append(sink, b"k", b"zombie3", partition=0)
                assert not await second.sent(tp, 10)
                assert tp not in second.tasks
                failed = await second.commit()
                assert failed.fenced == [tp]
                assert not failed.aborted
                assert state.positions() == {0: 7}  # its state write dropped
                assert await raw_committed(kafka_url, sink) == [b"a", b"b", b"d"]

                # Assignments: a producer is kept across consecutive group generations; after a
                # skipped one (this worker was out of the group: another owner fenced it) not.
                await third.stop(keep=[tp], generation=3)
                kept = third.tasks[tp]
                await third.stop(keep=[tp], generation=4)
                assert third.tasks[tp] is kept
                await third.stop(keep=[tp], generation=6)
                assert tp not in third.tasks
            finally:
                await third.close()
        finally:
            await second.close()
    finally:
        await first.close()
        state.close()

    # Every error of the fenced producers' futures was read. Unread, each is logged with its
    # traceback whenever a later collection frees it; on Python 3.11 a collection that runs
    # inside an AST conversion (an import pytest rewrites) then fails that conversion with
    # SystemError "AST constructor recursion depth mismatch" (the traceback's ast.parse nests
    # in it; cpython gh-106905): pytest exited 1 with every test passed.
    assert [e for e in unread_errors(caplog) if all(e is not b for b in unread_before)] == []


async def test_commit_interval_decides_which_transactions_are_due(broker: Broker) -> None:
    # TABLESTREAM_COMMIT_INTERVAL_MS: a transaction stays open that long (an hour cannot have
    # passed in this test); 0 commits each batch. An idle fetch commits everything either way.
    tp, sink, group = await new_topics(broker.url)
    made = []
    for interval in (3600.0, 0.0):
        txns = transactions(
            broker.url,
            group,
            sink,
            id_prefix=f"{group}-{interval:.0f}",
            client_id="test",
            commit_interval=interval,
        )
        made.append(txns)
        await txns.start([tp])
    held, each_batch = made
    try:
        for n, txns in enumerate(made):
            await send_one(txns, tp, sink, f"v{n}".encode(), n + 1)
        assert not held.due()
        assert not await held.commit()
        assert held.commits == 0
        assert held.tasks[tp].open
        assert each_batch.due()
        assert not await each_batch.commit()
        assert each_batch.commits == 1
        assert not await held.commit(everything=True)  # nothing came: all of it now
        assert held.commits == 1
        assert sorted(await raw_committed(broker.url, sink)) == [b"v0", b"v1"]
    finally:
        for txns in made:
            await txns.close()
